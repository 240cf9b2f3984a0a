"""Issue 17.3 and 17.4 (E8, R3): every announcement email opens with a hidden preheader (its first sentence,
for the inbox preview) and a "View in your browser" link to a web version with no member data in it."""

from __future__ import annotations

import html as html_module
import re
from typing import Any

from mailer.worker.runner import run_tick_for_app
from support.factories import add_member, admin_post, compose, logged_in_admin
from support.mail import flat, html_links, parts, text_links

BODY = (
    "# Transport to school\n\nDear {{ name }}, the council has written to us about school transport. "
    "Please read their letter.\n\nThe letter is below."
)
PREHEADER = re.compile(r"<body[^>]*>\s*<div ([^>]*)>(.*?)</div>", re.S)


def send_to_member(app: Any, clock: Any, smtp: Any) -> tuple[int, str, str]:
    """One announcement sent through the pages and the worker to Patricia; (id, text part, HTML part)."""
    with app.app_context():
        add_member("patricia.reader@example.org", name="Patricia Reader", clock=clock)
    admin = logged_in_admin(app, clock)
    announcement_id = compose(admin, subject="Transport news for {{ name }}", body=BODY)
    page = f"/admin/announcements/{announcement_id}"
    admin_post(admin, page, f"{page}/send-now")
    run_tick_for_app(app)
    text, html = parts(smtp.wait_for(1)[0].message)
    return announcement_id, text, html


def web_view_link(text: str, html: str) -> str:
    """The "View in your browser" URL: the same in both parts, above the body in both."""
    lines = text.split("\n")
    label = lines.index("View in your browser")
    url = lines[label + 1]
    assert url.startswith("https://forum.test/") and label < lines.index("Transport to school")
    assert html_links(html)[0] == url  # the first link in the HTML: near the top, before the body
    assert html.index(">View in your browser</a>") < html.index("Transport to school</h1>")
    return url


def test_preheader_is_the_first_sentence_hidden_and_the_text_part_is_unchanged(app, clock, smtp):
    """E8 / issue 17.3: the HTML starts with the first sentence of the body (the member's name filled in),
    hidden from view and from screen readers, padded; the text part has no preheader and no padding."""
    _, text, html = send_to_member(app, clock, smtp)
    match = PREHEADER.search(html)
    assert match is not None, html[:1500]
    attributes, content = match.group(1), html_module.unescape(match.group(2))
    assert 'class="preheader"' in attributes and 'aria-hidden="true"' in attributes
    assert "display: none" in attributes and "mso-hide: all" in attributes and "max-height: 0" in attributes
    sentence = "Dear Patricia Reader, the council has written to us about school transport."
    assert content.startswith(sentence + "\n\u034f\u00a0")  # then only padding: no more words pulled in
    assert set(content[len(sentence):]) == {"\n", "\u034f", "\u00a0"} and len(content) > len(sentence) + 100
    assert html.count(sentence) == 2  # the preheader and the body itself
    assert "\u034f" not in text and "preheader" not in text
    assert flat(text).count("the council has written to us about school transport.") == 1
    assert text.startswith("Test Parent Carer Forum\n\nView in your browser\nhttps://forum.test/")


def test_view_in_your_browser_shows_the_announcement_without_member_data(app, clock, smtp):
    """Issue 17.4 / R3: the link is in both parts; it opens the announcement with the archive's generic words
    ("parent or carer"), never the member's name, address or links; noindex; a tampered link is a 404."""
    _, text, html = send_to_member(app, clock, smtp)
    url = web_view_link(text, html)
    assert "/archive/view/" in url
    visitor = app.test_client()
    page = visitor.get(url.removeprefix("https://forum.test"))
    body = page.get_data(as_text=True)
    assert page.status_code == 200 and page.headers["X-Robots-Tag"] == "noindex"
    assert "Transport news for parent or carer" in body and "Dear parent or carer, the council" in body
    assert "Patricia" not in body and "patricia.reader" not in body
    assert "/unsubscribe/" not in body and "/preferences/" not in body
    for link in text_links(text):
        if "/unsubscribe/" in link or "/preferences/" in link:
            assert link.rsplit("/", 1)[1] not in url  # the web-view link carries nothing of the member's
    path = url.removeprefix("https://forum.test")
    token = path.rsplit("/", 1)[1]
    tampered = path[: -len(token)] + token[:-1] + ("A" if token[-1] != "A" else "B")
    for bad in (tampered, path + "x", "/archive/view/" + "A" * 300, "/archive/view/MQ"):
        response = visitor.get(bad)
        assert response.status_code == 404 and "Page not found" in response.get_data(as_text=True), bad


def test_public_announcement_links_its_archive_page(app, clock, smtp):
    """Issue 17.4: once an admin puts the sent announcement in the public archive (J7: only sent ones can
    be), the link in the emails already sent opens its archive page."""
    announcement_id, text, html = send_to_member(app, clock, smtp)
    url = web_view_link(text, html)
    page = f"/admin/announcements/{announcement_id}"
    assert admin_post(logged_in_admin(app, clock), page, f"{page}/publish", {"public": "1"}).status_code == 303
    response = app.test_client().get(url.removeprefix("https://forum.test"), follow_redirects=True)
    assert response.status_code == 200 and response.request.path == f"/archive/{announcement_id}"
    body = response.get_data(as_text=True)
    assert "Dear parent or carer, the council" in body and "Patricia" not in body


def test_cancelled_web_view_is_gone_and_deleted_is_not_found(app, clock, smtp):
    """Issue 17.4: the link in an admin's test email of a draft works; once the announcement is cancelled
    the page says it was withdrawn (410); once deleted it is a 404."""
    admin = logged_in_admin(app, clock)
    announcement_id = compose(admin, subject="Draft news", body="A draft. With two sentences.")
    page = f"/admin/announcements/{announcement_id}"
    admin_post(admin, page, f"{page}/test")
    run_tick_for_app(app)
    text, html = parts(smtp.wait_for(1)[0].message)
    url = next(link for link in text_links(text) if "/archive/view/" in link)
    assert url in html_links(html)
    visitor = app.test_client()
    path = url.removeprefix("https://forum.test")
    assert visitor.get(path).status_code == 200
    admin_post(admin, page, f"{page}/cancel")
    gone = visitor.get(path)
    assert gone.status_code == 410 and "This announcement was withdrawn" in gone.get_data(as_text=True)
    admin_post(admin, f"{page}/delete", f"{page}/delete")
    assert visitor.get(path).status_code == 404
