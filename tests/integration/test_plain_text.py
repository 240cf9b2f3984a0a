"""Issue 17 section 4, the plain-text part of every kind of email as it arrives at a real SMTP server (E1, E6):
no line over 78 characters but a line holding only a URL, links on lines of their own, phrases never split
across lines, and a footer that is true for each kind of transactional email."""

from __future__ import annotations

from email.message import EmailMessage

from mailer.worker.runner import run_tick_for_app
from support.factories import add_member, admin_post, compose, logged_in_admin
from support.mail import URL, flat, parts
from support.web import csrf_token, join, join_and_confirm

WIDTH = 78
PHRASES = (
    "Change your details or download your data",
    "Unsubscribe from these emails",
    "Unsubscribe from Test Parent Carer Forum",
    "Confirm my membership",
)
LONG_NAME = "Alexandra Catherine Montgomery-Fairweather"  # longer than the room kept for a name
BODY = (
    "# Survey closing soon\n\n"
    "Dear {{ name }}, thank you for everything you have told us this year about the services your family uses; "
    "the council reads every answer, and your words about waiting times changed their plans for the autumn.\n\n"
    "You get this as a member of {{ groups }}, and we would love to hear from every one of you before the "
    "survey closes on Friday 10 May at 5pm, even if your answers are short.\n\n"
    "> {{ name }}, your answers stay anonymous: the council sees only what all of us said together, never who "
    "said it, and we delete the raw answers once the report is written.\n\n"
    "- Read the council's letter at https://www.example.gov.uk/send/local-offer/2027/consultation-response-"
    "letter-to-families-and-carers.pdf before you answer\n"
)


def text_of(message: EmailMessage) -> str:
    text, _ = parts(message)
    return text


def assert_laid_out(text: str) -> None:
    """Every line fits in 78 characters or is one URL alone; no phrase is split across lines."""
    for line in text.split("\n"):
        assert len(line) <= WIDTH or URL.fullmatch(line.strip()), f"{len(line)}: {line!r}"
    for phrase in PHRASES:
        if phrase in flat(text):
            assert phrase in text.split("\n") or any(phrase in line for line in text.split("\n")), phrase
    for url in URL.findall(text):
        if len(url) > 40 and "/send/" not in url:  # a member's own link: on a line of its own
            assert url in text.split("\n"), url


def footer_of(text: str) -> str:
    return flat(text.split("\n-- \n", 1)[1])


def test_confirm_and_welcome_are_laid_out_with_true_footers(app, client, smtp):
    """The confirmation and the welcome: lines fit, links alone on a line; each footer says why it was sent."""
    welcome = join_and_confirm(app, client, smtp, "zoe@example.org", name=LONG_NAME)
    confirm = text_of(smtp.received[0].message)
    assert_laid_out(confirm)
    assert "someone, probably you, entered this address on our join form" in footer_of(confirm)
    text = text_of(welcome)
    assert_laid_out(text)
    assert "Change your details or download your data" in text.split("\n")
    assert "because you confirmed this address on our join form" in footer_of(text)
    assert "membership form" not in confirm + text


def test_already_a_member_and_lost_link_have_their_own_footers(app, client, smtp, clock):
    """Joining again and asking for a new link: lines fit, and each footer says what really happened."""
    join_and_confirm(app, client, smtp, "zoe@example.org", name=LONG_NAME)
    clock.advance(hours=2)  # past the one-mail-an-hour limit
    join(client, email="zoe@example.org", name=LONG_NAME)
    run_tick_for_app(app)
    already = text_of(smtp.wait_for(3)[2].message)
    assert "You are already a member" in already
    assert_laid_out(already)
    assert "someone, probably you, entered this address on our join form" in footer_of(already)
    clock.advance(hours=2)
    page = client.get("/preferences")
    token = csrf_token(page.get_data(as_text=True))
    client.post("/preferences", data={"csrf_token": token, "email": "zoe@example.org"})
    run_tick_for_app(app)
    lost = text_of(smtp.wait_for(4)[3].message)
    assert "Your link to change your details" in lost
    assert_laid_out(lost)
    footer = footer_of(lost)
    assert "someone, probably you, asked for a new link for this address" in footer
    assert "join form" not in footer and "membership form" not in footer


def test_announcement_and_test_send_are_laid_out(app, clock, smtp):
    """A long announcement with personal fields (a long name, several groups) and its test send: lines fit,
    the member's links alone on a line, the footer's phrases whole."""
    with app.app_context():
        add_member("long@example.org", clock=clock, name=LONG_NAME, groups=[1, 2, 3])
        add_member("short@example.org", clock=clock, name="Jo")
    admin = logged_in_admin(app, clock)
    announcement_id = compose(admin, subject="Survey for {{ name }}", body=BODY)
    page = f"/admin/announcements/{announcement_id}"
    assert admin_post(admin, page, f"{page}/test").status_code == 303
    run_tick_for_app(app)
    test_send = text_of(smtp.wait_for(1)[0].message)
    assert_laid_out(test_send)
    assert admin_post(admin, page, f"{page}/send-now").status_code == 303
    run_tick_for_app(app)
    received = smtp.wait_for(3)[1:]
    for item in received:
        text = text_of(item.message)
        assert_laid_out(text)
        assert "Unsubscribe from these emails" in text.split("\n")
        assert "Change your details or download your data" in text.split("\n")
    long_text = next(text_of(r.message) for r in received if r.rcpt_tos == ["long@example.org"])
    assert f"Dear {LONG_NAME}, thank you" in flat(long_text)
    assert "> " + LONG_NAME in long_text  # the quote keeps its marks when a long name makes it wrap again
    assert all(line.startswith(">") for line in long_text.split("\n") if "anonymous" in line or "raw answers" in line)


def test_announcement_footer_links_the_archive_and_a_new_link(app, clock, smtp):
    """R3: the announcement's footer links the public archive and the page to get a new link, in both parts."""
    with app.app_context():
        add_member("reader@example.org", clock=clock, name="Jo")
    admin = logged_in_admin(app, clock)
    page = f"/admin/announcements/{compose(admin, subject='News', body='Hello {{ name }}.')}"
    assert admin_post(admin, page, f"{page}/send-now").status_code == 303
    run_tick_for_app(app)
    text, html = parts(smtp.wait_for(1)[0].message)
    assert_laid_out(text)
    footer = footer_of(text)
    assert "archive (https://forum.test/archive)" in footer
    assert "Get a new link (https://forum.test/preferences) to change your details" in footer
    assert 'href="https://forum.test/archive"' in html and 'href="https://forum.test/preferences"' in html
    assert client_can_open(app, "/archive") and client_can_open(app, "/preferences")


def client_can_open(app, path: str) -> bool:  # type: ignore[no-untyped-def]
    return app.test_client().get(path).status_code == 200
