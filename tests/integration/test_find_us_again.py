"""Issue 20.6 (R3, "Find us again"): the home, confirmed and unsubscribe pages point people to the archive,
their preferences and "get a new link"; the archive has an Atom feed of the public announcements only."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any

from mailer.worker.runner import run_tick_for_app
from support.factories import add_member, admin_post, compose, logged_in_admin
from support.mail import flat, link_to, parts
from support.web import join, path_of, post_button

ATOM = "{http://www.w3.org/2005/Atom}"


def hrefs(html: str) -> list[str]:
    return re.findall(r'<a [^>]*href="([^"]+)"', html)


def test_home_page_links_join_the_archive_and_get_a_new_link(client):
    """R3: the home page links the join form, the archive and the lost-link page ("Get a new link")."""
    page = client.get("/").get_data(as_text=True)
    assert {"/join", "/archive", "/preferences"} <= set(hrefs(page))
    assert "Get a new link</a>" in page


def test_confirmed_page_says_what_happens_next_and_links_preferences_and_archive(app, client, smtp):
    """R3: after confirming, the page says what happens next and links the member's own preferences page
    (which opens) and the archive."""
    join(client, email="casey@example.org", name="Casey Carer")
    run_tick_for_app(app)
    confirm = path_of(link_to(smtp.wait_for(1)[0].message, "/confirm/"))
    page = post_button(client, confirm).get_data(as_text=True)
    assert "What happens next" in page and "/archive" in hrefs(page)
    [preferences] = [h for h in hrefs(page) if h.startswith("/preferences/")]
    opened = app.test_client().get(preferences)
    assert opened.status_code == 200 and "casey@example.org" in opened.get_data(as_text=True)


def test_unsubscribe_page_offers_changing_groups_before_the_button(app, client, smtp, clock):
    """R3: the unsubscribe page offers "change your groups instead" (the member's preferences) before the
    button; an unsubscribe link of an older version (it still unsubscribes, J4) offers "get a new link"
    instead, because preferences links show data and stay revocable."""
    join(client, email="sam@example.org", name="Sam Parent")
    run_tick_for_app(app)
    post_button(client, path_of(link_to(smtp.wait_for(1)[0].message, "/confirm/")))
    run_tick_for_app(app)
    unsubscribe = path_of(link_to(smtp.wait_for(2)[1].message, "/unsubscribe/"))
    page = client.get(unsubscribe).get_data(as_text=True)
    assert page.index("change your groups instead") < page.index(">Unsubscribe</button>")
    [preferences] = [h for h in hrefs(page) if h.startswith("/preferences/")]
    assert app.test_client().get(preferences).status_code == 200

    post_button(client, unsubscribe)  # leaves, then joins again: a new token version
    clock.advance(days=1)
    join(client, email="sam@example.org", name="Sam Parent")
    run_tick_for_app(app)
    post_button(client, path_of(link_to(smtp.wait_for(3)[2].message, "/confirm/")))
    old = client.get(unsubscribe).get_data(as_text=True)
    assert "change your groups instead" in old and "/preferences" in hrefs(old)
    assert not [h for h in hrefs(old) if h.startswith("/preferences/")]


def test_atom_feed_lists_only_public_announcements_newest_first(app, clock, smtp):
    """R3: /archive/feed.atom parses as Atom, lists the public sent announcements only, newest first, with
    absolute links and the archive's generic words; the archive page links it with <link rel="alternate">."""
    with app.app_context():
        add_member("reader@example.org", name="Robin Reader", clock=clock)
    admin = logged_in_admin(app, clock)
    ids = []
    for subject in ("Older public news", "Private news", "Newer public news for {{ name }}"):
        announcement_id = compose(admin, subject=subject, body=f"# {subject}\n\nDear {{{{ name }}}}, hello.")
        page = f"/admin/announcements/{announcement_id}"
        admin_post(admin, page, f"{page}/send-now")
        run_tick_for_app(app)
        clock.advance(hours=1)
        if subject != "Private news":
            assert admin_post(admin, page, f"{page}/publish", {"public": "1"}).status_code == 303
        ids.append(announcement_id)
    smtp.wait_for(3)
    visitor = app.test_client()
    response = visitor.get("/archive/feed.atom")
    assert response.status_code == 200 and response.mimetype == "application/atom+xml"
    feed = ET.fromstring(response.data)
    assert feed.tag == f"{ATOM}feed"
    entries = feed.findall(f"{ATOM}entry")
    titles = [e.findtext(f"{ATOM}title") for e in entries]
    assert titles == ["Newer public news for parent or carer", "Older public news"]
    links = [e.find(f"{ATOM}link").get("href") for e in entries]  # type: ignore[union-attr]
    assert links == [f"https://forum.test/archive/{ids[2]}", f"https://forum.test/archive/{ids[0]}"]
    assert "Robin" not in response.get_data(as_text=True)
    assert "Dear parent or carer" in (entries[0].findtext(f"{ATOM}content") or "")
    archive = visitor.get("/archive").get_data(as_text=True)
    assert re.search(
        r'<link rel="alternate" type="application/atom\+xml" title="[^"]+" href="https://forum.test/archive/feed.atom">',
        archive,
    )


def test_feed_of_an_empty_archive_is_valid(client: Any):
    """R3: with nothing public yet the feed is still a valid, empty Atom feed."""
    feed = ET.fromstring(client.get("/archive/feed.atom").data)
    assert feed.tag == f"{ATOM}feed" and feed.findall(f"{ATOM}entry") == []


def test_welcome_email_lists_the_groups_chosen(app, client, smtp):
    """R3 / issue 20.6: the welcome email, through the real SMTP sink, names the groups the member chose in the
    join form's order, in both parts."""
    join(client, email="alex@example.org", name="Alex Carer", groups=[3, 1])
    run_tick_for_app(app)
    post_button(client, path_of(link_to(smtp.wait_for(1)[0].message, "/confirm/")))
    run_tick_for_app(app)
    text, html = parts(smtp.wait_for(2)[1].message)
    assert "You chose to hear about: Forum news and Voice and Influence group." in flat(text)
    assert "You chose to hear about: Forum news and Voice and Influence group." in html
    assert "Local Offer" not in flat(text)
