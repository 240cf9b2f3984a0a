"""Bad input gets a clear 4xx page, never a 500, and changes nothing (Security; J1, J2, E3).

Each test counts members, consent events and outbox rows before and after the request."""

from __future__ import annotations

from typing import Any

import pytest
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import delete, func, select

from mailer.extensions import db
from mailer.mail.outbox import enqueue_mail
from mailer.mail.tokens import Purpose, make_token
from mailer.members import consent
from mailer.members.addresses import normalise_address
from mailer.models import ConsentEvent, JoinRequest, MailKind, Member, MemberStatus, OutboxMessage, new_link_key
from mailer.settings import settings_of
from mailer.worker.runner import process_join_requests_for_app, run_tick_for_app
from support.factories import add_member, link_key_of, logged_in_admin
from support.web import csrf_token, join

ALREADY_MEMBER_SUBJECT = "You are already a member of Test Parent Carer Forum"
CONFIRM_SUBJECT = "Please confirm you want to join Test Parent Carer Forum"

# The many variants of one refusal run on SQLite only: each is refused before any write, so the
# backend plays no part; the single-case tests below run on both backends.
sqlite_only = pytest.mark.parametrize("database_uri", ["sqlite"], indirect=True)


def counts(app: Any) -> tuple[int, int, int, int]:
    """(members, consent events, outbox rows, queued join posts): what a rejected request must leave alone."""
    with app.app_context():
        return tuple(  # type: ignore[return-value]
            db.session.scalar(select(func.count()).select_from(model))
            for model in (Member, ConsentEvent, OutboxMessage, JoinRequest)
        )


def pending_member(app: Any, clock: Any, email: str = "pending@example.org") -> int:
    with app.app_context():
        return add_member(email, clock=clock, status=MemberStatus.PENDING)


def confirm_token(app: Any, clock: Any, member_id: int, version: int = 1) -> str:
    return make_token(app.config["SECRET_KEY"], Purpose.CONFIRM, link_key_of(app, member_id), version, clock=clock)


def page_text(response: Any) -> str:
    assert response.content_type.startswith("text/html"), response.content_type
    return response.get_data(as_text=True)


def assert_clear_page(response: Any, status: int, *phrases: str) -> str:
    body = page_text(response)
    assert response.status_code == status, body[:1500]
    assert "Sorry, something went wrong" not in body
    for phrase in phrases:
        assert phrase in body, f"{phrase!r} not on the {status} page"
    return body


# --- the join form ---------------------------------------------------------


@sqlite_only
@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"name": "N" * 10240}, "Your name must be 100 characters or fewer."),
        ({"email": "a" * 10240 + "@example.org"}, "Enter a valid email address, like name@example.com."),
        ({"email": "not-an-address"}, "Enter a valid email address, like name@example.com."),
        ({"email": "zoe@example.org\r\nBcc: evil@example.org"}, "Enter a valid email address"),
        ({"name": "Zoe\r\nBcc: evil@example.org"}, "must not contain line breaks or control characters"),
        ({"name": "Zoe\nParent"}, "must not contain line breaks or control characters"),
        ({"name": "Zoe\x07Parent"}, "must not contain line breaks or control characters"),
        ({"name": "Zoe\x1bParent"}, "must not contain line breaks or control characters"),
        ({"name": "Zoe\u2028Parent"}, "must not contain line breaks or control characters"),
    ],
    ids=["name-10kb", "email-10kb", "invalid-address", "email-crlf", "name-crlf", "name-lf", "name-bell",
         "name-escape", "name-line-separator"],
)
def test_bad_join_fields_get_a_400_form_and_store_nothing(app, client, smtp, fields, message):
    """Oversized, invalid or control-character input is refused on the form with a reason, storing nothing."""
    before = counts(app)
    response = join(client, **{"email": "zoe@example.org", "name": "Zoe Parent", **fields})
    body = assert_clear_page(response, 400, message, "Join our email list")
    assert "Error: Join our email list" in body  # the title tells screen-reader users at once
    assert counts(app) == before
    assert run_tick_for_app(app).outbox.sent == 0
    assert smtp.received == []


def test_missing_consent_tickbox_is_refused(app, client):
    """J1/C1: without the ticked consent box nothing is stored, and the page says why."""
    before = counts(app)
    response = join(client, email="noconsent@example.org", consent=False)
    assert_clear_page(response, 400, "Tick the box to say you want to get our emails.")
    assert counts(app) == before


@sqlite_only
@pytest.mark.parametrize("group", ["999", "0", "-1", "not-a-number"])
def test_unknown_group_is_refused(app, client, group):
    """Groups come from the list; a forged id is a 400 on the form, not a 500 or a half-made member."""
    before = counts(app)
    page = client.get("/join")
    response = client.post("/join", data={
        "csrf_token": csrf_token(page.get_data(as_text=True)), "name": "Zoe", "email": "group@example.org",
        "social_media": "no", "groups": ["1", group], "consent": "y",
    })
    body = assert_clear_page(response, 400, "Join our email list")
    assert 'id="groups-error"' in body and '<a href="#groups">' in body  # the error names the field
    assert counts(app) == before


def test_unknown_social_media_answer_is_refused(app, client):
    """The radio buttons have three answers; anything else is a 400, not a 500 from the enum."""
    before = counts(app)
    response = join(client, email="radio@example.org", social_media="maybe")
    assert_clear_page(response, 400, "Join our email list")
    assert counts(app) == before


def test_join_without_csrf_token_is_refused(app, client):
    """Security: a join POST without its CSRF token gets the 'please try again' page and stores nothing."""
    before = counts(app)
    response = client.post("/join", data={
        "name": "Zoe", "email": "csrf@example.org", "social_media": "no", "groups": ["1"], "consent": "y",
    })
    assert_clear_page(response, 400, "Please try again", "Nothing was changed")
    assert counts(app) == before


@sqlite_only
@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
def test_wrong_method_on_join_is_a_405_page(app, client, method):
    """A wrong HTTP method gets the 405 page with words a person understands."""
    before = counts(app)
    response = client.open("/join", method=method, data={"email": "x@example.org"})
    assert_clear_page(response, 405, "That is not how this page works")
    assert "GET" in response.headers["Allow"] and "POST" in response.headers["Allow"]
    assert counts(app) == before


def test_body_over_max_content_length_is_a_413_page(app, client):
    """An oversized POST body is refused before parsing with the 413 page."""
    before = counts(app)
    size = app.config["MAX_CONTENT_LENGTH"] + 1024
    response = client.post(
        "/join", data=b"name=" + b"x" * size, content_type="application/x-www-form-urlencoded"
    )
    assert_clear_page(response, 413, "That was too much to send")
    assert counts(app) == before


def test_honeypot_is_answered_like_success_but_stores_nothing(app, client, smtp):
    """Bots that fill the hidden field get the ordinary 303, and nothing is stored or queued."""
    before = counts(app)
    normal = join(client, email="human@example.org")
    after_human = counts(app)
    bot = join(client, email="bot@example.org", website="http://spam.example")
    assert bot.status_code == normal.status_code == 303
    assert bot.headers["Location"] == normal.headers["Location"]
    assert counts(app) == after_human != before
    run_tick_for_app(app)
    assert [r.rcpt_tos for r in smtp.wait_for(1)] == [["human@example.org"]]


# --- header injection (E3) -------------------------------------------------


def test_crlf_in_a_stored_name_never_becomes_a_header(app, smtp, clock):
    """E3: even a name that bypassed the form (an import, an old row) cannot add a Bcc or a recipient."""
    with app.app_context():
        member_id = add_member(
            "target@example.org", clock=clock, status=MemberStatus.PENDING, name="Zoe\r\nBcc: evil@example.org"
        )
        enqueue_mail(db.session, MailKind.CONFIRM, member_id=member_id, clock=clock)
        db.session.commit()

    assert run_tick_for_app(app).outbox.sent == 1
    (received,) = smtp.wait_for(1)
    assert received.rcpt_tos == ["target@example.org"]
    message = received.message
    assert message["Bcc"] is None
    header_block = received.raw.split(b"\r\n\r\n", 1)[0]
    header_names = [line.split(b":", 1)[0] for line in header_block.split(b"\r\n") if line[:1] not in (b" ", b"\t")]
    assert b"Bcc" not in header_names and header_names.count(b"To") == 1
    (to,) = message["To"].addresses
    assert to.addr_spec == "target@example.org"
    assert "\r" not in to.display_name and "\n" not in to.display_name
    assert "Zoe" in to.display_name
    assert "evil@example.org" not in str(message["To"]).split("<")[-1]


# --- confirmation links ----------------------------------------------------


def _tamper(token: str, index: int) -> str:
    char = token[index]
    return token[:index] + ("A" if char != "A" else "B") + token[index + 1 :]


def _bad_tokens(app: Any, clock: Any, member_id: int) -> dict[str, str]:
    good = confirm_token(app, clock, member_id)
    signature_start = good.rindex(".") + 1
    return {
        "tampered-payload": _tamper(good, 0),
        "tampered-signature": _tamper(good, signature_start),
        "truncated": good[:-6],
        "no-signature": good[: signature_start - 1],
        "garbage": "not-a-token",
        "too-long": good + "A" * 600,
        "unsubscribe-purpose": make_token(
            app.config["SECRET_KEY"], Purpose.UNSUBSCRIBE, link_key_of(app, member_id), 1, clock=clock
        ),
        "other-secret": make_token("another-secret", Purpose.CONFIRM, link_key_of(app, member_id), 1, clock=clock),
        "old-version": confirm_token(app, clock, member_id, version=0),
        "unknown-member": make_token(app.config["SECRET_KEY"], Purpose.CONFIRM, new_link_key(), 1, clock=clock),
    }


BAD_TOKEN_KINDS = [
    "tampered-payload", "tampered-signature", "truncated", "no-signature", "garbage", "too-long",
    "unsubscribe-purpose", "other-secret", "old-version", "unknown-member",
]


@sqlite_only
@pytest.mark.parametrize("kind", BAD_TOKEN_KINDS)
def test_bad_confirmation_link_is_a_400_page_and_confirms_nothing(app, client, clock, kind):
    """Tampered, truncated, foreign-purpose, revoked or unknown links: the 'link does not work' page (GET, POST)."""
    member_id = pending_member(app, clock)
    token = _bad_tokens(app, clock, member_id)[kind]
    before = counts(app)
    assert_clear_page(client.get(f"/confirm/{token}"), 400, "This link does not work")
    form_token = csrf_token(client.get("/join").get_data(as_text=True))
    response = client.post(f"/confirm/{token}", data={"csrf_token": form_token})
    assert_clear_page(response, 400, "This link does not work")
    assert response.headers["Cache-Control"] == "no-store"
    assert counts(app) == before
    with app.app_context():
        assert db.session.get(Member, member_id).status is MemberStatus.PENDING


def _unsubscribe_tokens(app: Any, clock: Any, member_id: int) -> dict[str, str]:
    key = app.config["SECRET_KEY"]
    good = make_token(key, Purpose.UNSUBSCRIBE, link_key_of(app, member_id), 1, clock=clock)
    signature_start = good.rindex(".") + 1
    return {
        "tampered-payload": _tamper(good, 0),
        "tampered-signature": _tamper(good, signature_start),
        "truncated": good[:-6],
        "garbage": "not-a-token",
        "too-long": good + "A" * 600,
        "confirm-purpose": make_token(key, Purpose.CONFIRM, link_key_of(app, member_id), 1, clock=clock),
        "preferences-purpose": make_token(key, Purpose.PREFERENCES, link_key_of(app, member_id), 1, clock=clock),
        "other-secret": make_token("another-secret", Purpose.UNSUBSCRIBE, link_key_of(app, member_id), 1, clock=clock),
        "id-payload": URLSafeTimedSerializer(key, salt="mailer.unsubscribe").dumps([member_id, 1]),
    }


@sqlite_only
@pytest.mark.parametrize("kind", ["tampered-payload", "tampered-signature", "truncated", "garbage", "too-long",
                                  "confirm-purpose", "preferences-purpose", "other-secret", "id-payload"])
def test_bad_unsubscribe_link_is_a_400_page_and_unsubscribes_nobody(app, client, clock, kind):
    """J4: an unsubscribe link we did not sign for that purpose (or an old id-style one) is a 400 page on GET,
    the form POST and the one-click POST, and nobody is unsubscribed."""
    with app.app_context():
        member_id = add_member("stays@example.org", clock=clock)
    token = _unsubscribe_tokens(app, clock, member_id)[kind]
    before = counts(app)
    assert_clear_page(client.get(f"/unsubscribe/{token}"), 400, "This link does not work")
    form_token = csrf_token(client.get("/join").get_data(as_text=True))
    assert_clear_page(
        client.post(f"/unsubscribe/{token}", data={"csrf_token": form_token}), 400, "This link does not work"
    )
    assert_clear_page(client.post(f"/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click"}), 400,
                      "This link does not work")
    assert counts(app) == before
    with app.app_context():
        assert db.session.get(Member, member_id).status is MemberStatus.MEMBER


@pytest.mark.parametrize("kind", ["old-version", "unknown-member"])
def test_unsubscribe_links_we_signed_never_get_a_400(app, client, clock, kind):
    """J4: unsubscribe links never expire and are not revoked: one with an older version still unsubscribes
    (after a re-join), and one for a key nobody holds (erased) answers 200 "not on our list", changing nothing."""
    with app.app_context():
        member_id = add_member("leaves@example.org", clock=clock)
        db.session.get(Member, member_id).token_version = 3
        db.session.commit()
    link_key = link_key_of(app, member_id) if kind == "old-version" else new_link_key()
    token = make_token(app.config["SECRET_KEY"], Purpose.UNSUBSCRIBE, link_key, 1, clock=clock)
    clock.advance(days=3650)
    before = counts(app)
    expected = "Press the button" if kind == "old-version" else "You are not on our list"
    assert_clear_page(client.get(f"/unsubscribe/{token}"), 200, expected)
    expected = "You are unsubscribed" if kind == "old-version" else "You are not on our list"
    assert_clear_page(client.post(f"/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click"}), 200, expected)
    members, events, outbox, joins = counts(app)
    assert (members, outbox, joins) == (before[0], before[2], before[3])
    assert events == before[1] + (1 if kind == "old-version" else 0)
    with app.app_context():
        status = db.session.get(Member, member_id).status
    assert status is (MemberStatus.UNSUBSCRIBED if kind == "old-version" else MemberStatus.MEMBER)


def test_confirm_post_without_csrf_token_is_refused(app, client, clock):
    """Security: the confirm button's POST needs its CSRF token; without it nothing is confirmed."""
    member_id = pending_member(app, clock)
    token = confirm_token(app, clock, member_id)
    before = counts(app)
    response = client.post(f"/confirm/{token}", data={})
    assert_clear_page(response, 400, "Please try again")
    assert counts(app) == before
    with app.app_context():
        assert db.session.get(Member, member_id).status is MemberStatus.PENDING


def test_expired_confirmation_link_is_a_410_page_offering_a_new_link(app, client, clock):
    """J2: after 7 days the link answers 410 with a 'Send me a new link' button, on GET and on POST."""
    member_id = pending_member(app, clock)
    token = confirm_token(app, clock, member_id)
    page = client.get(f"/confirm/{token}")
    assert page.status_code == 200
    form_token = csrf_token(page.get_data(as_text=True))
    clock.advance(days=8)
    before = counts(app)

    body = assert_clear_page(client.get(f"/confirm/{token}"), 410, "This link has expired", "Send me a new link")
    assert f'action="/confirm/{token}/new-link"' in body
    assert_clear_page(client.post(f"/confirm/{token}", data={"csrf_token": form_token}), 410, "Send me a new link")
    assert counts(app) == before
    with app.app_context():
        assert db.session.get(Member, member_id).status is MemberStatus.PENDING


def test_link_of_an_erased_member_is_a_400_page(app, client, clock):
    """C3: once the member row is gone, their old link finds nothing and says so, without a 500."""
    member_id = pending_member(app, clock)
    token = confirm_token(app, clock, member_id)
    with app.app_context():
        db.session.execute(delete(Member).where(Member.id == member_id))
        db.session.commit()
    before = counts(app)
    assert_clear_page(client.get(f"/confirm/{token}"), 400, "This link does not work")
    form_token = csrf_token(client.get("/join").get_data(as_text=True))
    assert_clear_page(client.post(f"/confirm/{token}", data={"csrf_token": form_token}), 400, "This link does not work")
    assert counts(app) == before


# --- no enumeration (J1) ---------------------------------------------------


def _answer(client: Any, email: str) -> tuple[int, str, bytes, str]:
    response = join(client, email=email)
    done = client.get(response.headers.get("Location", "/nowhere"))
    return response.status_code, response.headers.get("Location", ""), response.get_data(), done.get_data(as_text=True)


def test_join_answers_the_same_whoever_the_address_belongs_to(app, client, smtp, clock):
    """J1: new, pending, member and suppressed addresses get identical answers; only the mail differs."""
    join(client, email="pending@example.org")
    with app.app_context():
        add_member("member@example.org", clock=clock)
        key = settings_of(app).suppression_key
        consent.suppress_address(
            db.session, key, normalise_address("suppressed@example.org")[1], "bounces", clock=clock
        )
        db.session.commit()
    run_tick_for_app(app)
    smtp.wait_for(1)
    smtp.clear()

    answers = {
        email: _answer(client, email)
        for email in ("new@example.org", "pending@example.org", "member@example.org", "suppressed@example.org")
    }
    first = answers["new@example.org"]
    assert first[0] == 303 and first[1].endswith("/join/check-your-email")
    assert "Check your email" in first[3]
    for email, answer in answers.items():
        assert answer == first, f"the answer for {email} differs"

    # Asking again and again within the hour sends nothing more to anyone.
    for _ in range(2):
        for email in answers:
            assert _answer(client, email) == first
    clock.advance(minutes=59)
    for email in answers:
        assert _answer(client, email) == first

    run_tick_for_app(app)
    subjects = {email: [r.message["Subject"] for r in smtp.to(email)] for email in answers}
    assert subjects == {
        "new@example.org": [CONFIRM_SUBJECT],
        "pending@example.org": [],  # had its confirmation less than an hour ago
        "member@example.org": [ALREADY_MEMBER_SUBJECT],
        "suppressed@example.org": [],
    }
    with app.app_context():
        assert db.session.scalar(select(func.count()).where(Member.email_key == "suppressed@example.org")) == 0


def test_one_mail_per_address_per_hour_then_another(app, client, smtp, clock):
    """Security: repeated joins within the interval send at most one mail; after it, one more may go."""
    for _ in range(5):
        assert join(client, email="repeat@example.org").status_code == 303
    run_tick_for_app(app)
    assert len(smtp.wait_for(1)) == 1
    clock.advance(minutes=61)
    join(client, email="repeat@example.org")
    join(client, email="repeat@example.org")
    run_tick_for_app(app)
    assert [r.message["Subject"] for r in smtp.wait_for(2)] == [CONFIRM_SUBJECT, CONFIRM_SUBJECT]
    assert len(smtp.received) == 2


# --- values the database cannot hold ----------------------------------------


@pytest.mark.parametrize("path", ["/archive/99999999999999999999", "/archive/2147483648"])
def test_an_id_too_big_for_the_database_is_a_404_not_a_500(app, client, path):
    """A number in a URL that no integer column can hold finds no page; it must not overflow into a 500."""
    assert_clear_page(client.get(path), 404, "Page not found")


def test_an_admin_id_too_big_for_the_database_is_a_404_not_a_500(app, clock):
    """The same for the admin pages, with a logged-in admin."""
    admin = logged_in_admin(app, clock)
    for path in ("/admin/members/99999999999999999999", "/admin/announcements/99999999999999999999"):
        assert_clear_page(admin.get(path), 404, "Page not found")


def test_nul_character_in_a_form_is_a_400_not_a_500(app, client):
    """PostgreSQL cannot store or even compare a NUL: any form value holding one is refused with a 400."""
    page = client.get("/admin/login")
    response = client.post(
        "/admin/login",
        data={
            "csrf_token": csrf_token(page.get_data(as_text=True)),
            "email": "a\x00@example.org",
            "password": "x" * 20,
        },
    )
    assert_clear_page(response, 400)
    before = counts(app)
    assert_clear_page(join(client, email="nul@example.org", website="\x00"), 400)
    assert_clear_page(client.get("/join?x=%00"), 400)
    assert counts(app) == before


def test_control_characters_in_the_user_agent_are_kept_out_of_the_evidence(app, client):
    """C1: the consent record keeps the browser's user agent, minus the NUL and control characters it cannot hold."""
    page = client.get("/join")
    response = client.post(
        "/join",
        data={"csrf_token": csrf_token(page.get_data(as_text=True)), "name": "Zoe", "email": "agent@example.org",
              "social_media": "no", "groups": ["1"], "consent": "y"},
        headers={"User-Agent": "Evil\x00Agent\x1b/1.0"},
    )
    assert response.status_code == 303
    process_join_requests_for_app(app)
    with app.app_context():
        assert db.session.scalar(select(ConsentEvent.user_agent)) == "EvilAgent/1.0"


# --- numbers from a request (issue 15) ------------------------------------------------

TOO_BIG = ["2147483648", "99999999999999999999"]  # PostgreSQL's integer, SQLite's driver


@pytest.mark.parametrize("after", [*TOO_BIG, "-1", "0", "abc", "1e3", "\u0663"])
def test_a_members_list_page_number_out_of_range_is_a_400(app, clock, after):
    """?after= on the members list: a number no id holds, or not a number, is a clear 400, not a 500."""
    admin = logged_in_admin(app, clock)
    with app.app_context():
        add_member("listed@example.org", clock=clock, name="Listed Member")
    before = counts(app)
    response = admin.get(f"/admin/members?q=Listed&after={after}")
    assert_clear_page(response, 400, "A number in this page’s address is not right")
    assert counts(app) == before
    assert admin.get("/admin/members?after=2147483647").status_code == 200  # the largest id is fine


@pytest.mark.parametrize("group", [*TOO_BIG, "-2147483649"])
def test_a_group_number_out_of_range_on_the_announcement_form_is_a_400(app, clock, group):
    """groups= on the new-announcement form: the audience count runs before validation, and must not
    send the number to the database; the form comes back with the error, nothing is stored."""
    from mailer.models import Announcement

    admin = logged_in_admin(app, clock)
    page = admin.get("/admin/announcements/new")
    response = admin.post("/admin/announcements/new", data={
        "csrf_token": csrf_token(page.get_data(as_text=True)), "subject": "Hello", "body": "Hi", "groups": ["1", group],
    })
    body = assert_clear_page(response, 400)
    assert 'id="groups-error"' in body
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Announcement)) == 0


SWEEP_VALUES = [*TOO_BIG, "-1", "\u0663"]  # and an Arabic-Indic 3, which int() would take
SWEEP_NAMES = ["after", "page", "sample", "group", "groups", "status", "id", "member_id", "announcement_id",
               "document_id", "template_id", "public", "documents"]
# Routes that remove what others need run last, in this order (logging out ends the sweep).
LAST = ("delete", "cancel", "unsubscribe", "erase", "logout")


def _sweep_order(rule: Any) -> tuple[int, str]:
    return next((i for i, word in enumerate(LAST) if word in rule.endpoint), -1), rule.rule


def _sweep_arguments(app: Any, client: Any, smtp: Any) -> dict[str, Any]:
    """One real value per URL variable: a confirmed member's links (from their emails), an announcement
    with a document, a template."""
    import io

    from mailer.admins.invitations import invite_admin
    from mailer.announcements.templates import list_templates
    from mailer.models import Admin, AdminRole, Document
    from support.documents import tiny_pdf
    from support.factories import compose
    from support.mail import parts, text_links
    from support.web import join_and_confirm

    join_and_confirm(app, client, smtp, "sweep@example.org", name="Sweep Member")
    links = {}
    for received in smtp.received:
        for link in text_links(parts(received.message)[0]):
            path = link.removeprefix("https://forum.test")
            links.setdefault(path.split("/")[1], path.split("/")[2] if path.count("/") >= 2 else "")
    announcement_id = compose(client, subject="Sweep", body="Sweep.", groups=[1])
    page = f"/admin/announcements/{announcement_id}/documents/new"
    client.post(page, data={"csrf_token": csrf_token(client.get(page).get_data(as_text=True)),
                            "document": (io.BytesIO(tiny_pdf()), "letter.pdf")}, content_type="multipart/form-data")
    with app.app_context():
        member_id = db.session.scalar(select(Member.id))
        document = db.session.scalars(select(Document)).one()
        template_id = list_templates(db.session)[0].id
        admin_id = db.session.scalar(select(Admin.id))
        invitation = invite_admin(db.session, "invited@example.org", AdminRole.WRITER, invited_by_id=admin_id,
                                  clock=app.extensions["mailer.clock"])
        db.session.commit()
        return {"member_id": member_id, "announcement_id": announcement_id, "document_id": document.id,
                "template_id": template_id, "group_id": 1, "public_id": document.public_id, "name": "letter.pdf",
                "import_id": "A" * 22, "links": links, "admin_id": admin_id, "invitation_id": invitation.id,
                "session_id": 999_999}  # a session that does not exist: ending the sweep's own would log it out


def test_generated_sweep_numbers_no_column_holds_are_never_a_500(make_app, clock, smtp, tmp_path):
    """Every route of the url_map, as a logged-in admin with a valid CSRF token: out-of-range numbers in the
    URL, in every query argument and form field that takes a number, get a 4xx (or the page), never a 500."""
    from flask import url_for
    from werkzeug.routing import IntegerConverter

    app = make_app(MAILER_DOCUMENT_DIR=str(tmp_path / "documents"), MAILER_IMPORT_DIR=str(tmp_path / "imports"))
    client = logged_in_admin(app, clock)
    values = _sweep_arguments(app, client, smtp)
    token = csrf_token(client.get("/admin/announcements/new").get_data(as_text=True))
    rules = sorted(
        (rule for rule in app.url_map.iter_rules() if rule.endpoint != "static"),
        key=_sweep_order,
    )
    seen: list[tuple[str, str, int]] = []

    def path_for(rule: Any, args: dict[str, Any]) -> str:
        with app.test_request_context():
            return url_for(rule.endpoint, **args)

    def check(method: str, path: str, **kwargs: Any) -> None:
        response = client.open(path, method=method, **kwargs)
        assert response.status_code < 500, (method, path, kwargs.get("data") or kwargs.get("query_string"))
        seen.append((method, path, response.status_code))

    for rule in rules:
        int_arguments = [a for a in rule.arguments if isinstance(rule._converters[a], IntegerConverter)]
        args = {}
        for argument in rule.arguments:
            if argument == "token":
                args[argument] = values["links"].get(rule.rule.split("/")[1], "not-a-token")
            elif argument == "action":  # a value the rule's `any(...)` converter takes
                args[argument] = sorted(rule._converters[argument].items)[0]
            else:
                args[argument] = values.get(argument, "x")
        path = path_for(rule, args)
        methods = [m for m in ("GET", "POST") if m in (rule.methods or ())]
        for value in SWEEP_VALUES:
            numbers = dict.fromkeys(SWEEP_NAMES, value)
            for method in methods:
                if method == "GET":
                    check("GET", path, query_string=numbers)
                else:
                    check("POST", path, data={"csrf_token": token, **numbers})
                    check("POST", path, json=numbers)
            for argument in int_arguments if value in TOO_BIG else ():  # in the URL: finds no page
                check(methods[0], path_for(rule, {**args, argument: 7654321}).replace("/7654321", f"/{value}"))
    assert len({path for _, path, _ in seen}) >= 40
    assert ("GET", "/admin/members", 400) in seen


def test_a_failing_statement_is_logged_without_its_parameters(make_app, clock, caplog):
    """A statement that fails (a bug, a driver limit) is logged with its SQL but without the values it carried
    or PostgreSQL's quote of the row, which would put a member's name and address in the log."""
    import logging

    from sqlalchemy import update

    from mailer.logs.redact import RedactFilter
    from mailer.logs.setup import KeyValueFormatter

    app = make_app(PROPAGATE_EXCEPTIONS=False)
    name = "Zoë Secretname"  # not on the failing line, which the traceback quotes

    @app.get("/test-only/failing-statement")
    def failing_statement():  # type: ignore[no-untyped-def]
        db.session.execute(update(Member).values(name=name, email=None))  # NOT NULL: fails
        return "not reached"

    with app.app_context():
        add_member("zoe.secretname@example.org", clock=clock, name=name)
    with caplog.at_level(logging.ERROR):
        response = app.test_client().get("/test-only/failing-statement")
    assert response.status_code == 500
    # Each line as the production handler writes it (mailer.logs.setup.configure_logging).
    formatter, redaction = KeyValueFormatter(), RedactFilter()
    logged = "\n".join(formatter.format(record) for record in caplog.records if redaction.filter(record))
    assert "UPDATE member SET" in logged  # the statement is there, to find the bug
    assert "SQL parameters hidden" in logged
    assert "secretname" not in logged.lower(), logged
