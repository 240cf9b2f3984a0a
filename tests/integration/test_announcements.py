"""J3/J4/J7 with a real SMTP server: compose, preview, test, send to the right people, leave, archive."""

from __future__ import annotations

import re
import subprocess
import threading
from datetime import UTC, datetime
from pathlib import Path

import dkim
import pytest
from sqlalchemy import func, select

from mailer.extensions import db
from mailer.models import (
    Admin,
    AdminRole,
    Announcement,
    AnnouncementState,
    ConsentAction,
    ConsentEvent,
    Delivery,
    DeliveryState,
    Member,
    MemberStatus,
    SocialMedia,
)
from mailer.worker.runner import run_tick_for_app
from support.factories import add_member, add_members, admin_post, compose, link_key_of, logged_in_admin
from support.mail import flat, html_links, link_to, parts, text_links, wire_lines
from support.web import csrf_token, path_of

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "samples"
REVISIT = (SAMPLES / "revisit-survey.md").read_text(encoding="utf-8")
UPDATE = (SAMPLES / "communication-update.md").read_text(encoding="utf-8")


def elements_of(html: str) -> list[tuple[str, list[tuple[str, str | None]]]]:
    """Every element and its attributes, as a browser would parse them."""
    from html.parser import HTMLParser

    found: list[tuple[str, list[tuple[str, str | None]]]] = []

    class Collector(HTMLParser):
        def handle_starttag(self, tag, attrs):  # type: ignore[no-untyped-def]
            found.append((tag, attrs))

    Collector().feed(html)
    return found


def send_now(client, announcement_id: int):  # type: ignore[no-untyped-def]
    page = f"/admin/announcements/{announcement_id}"
    response = admin_post(client, page, f"{page}/send-now")
    assert response.status_code == 303
    return response


def test_group_announcement_reaches_exactly_its_confirmed_members(app, clock, smtp):
    """Only confirmed members of the chosen group get it; pending, left, suppressed and other groups get nothing."""
    with app.app_context():
        add_member("in-group@example.org", clock=clock, groups=[2])
        add_member("in-both@example.org", clock=clock, groups=[1, 2], social_media=SocialMedia.NO)
        add_member("other-group@example.org", clock=clock, groups=[1])
        add_member("pending@example.org", clock=clock, groups=[2], status=MemberStatus.PENDING)
        add_member("left@example.org", clock=clock, groups=[2], status=MemberStatus.UNSUBSCRIBED)
    admin = logged_in_admin(app, clock)
    announcement_id = compose(admin, subject="Local Offer meeting", body=UPDATE, groups=[2])
    page = admin.get(f"/admin/announcements/{announcement_id}").get_data(as_text=True)
    assert re.search(r"reaches <strong>2</strong> confirmed members", page)
    send_now(admin, announcement_id)
    summary = run_tick_for_app(app)
    assert summary.deliveries.sent == 2
    received = sorted(r.rcpt_tos[0] for r in smtp.wait_for(2))
    assert received == ["in-both@example.org", "in-group@example.org"]
    with app.app_context():
        item = db.session.get(Announcement, announcement_id)
        assert item.state is AnnouncementState.SENT and item.recipient_count == 2


def test_only_members_without_social_media(app, clock, smtp):
    """The 'do not use social media' choice narrows the audience to members who answered No."""
    with app.app_context():
        add_member("no-social@example.org", clock=clock, social_media=SocialMedia.NO)
        add_member("social@example.org", clock=clock, social_media=SocialMedia.YES)
        add_member("unsaid@example.org", clock=clock, social_media=SocialMedia.PREFER_NOT_TO_SAY)
    admin = logged_in_admin(app, clock)
    send_now(admin, compose(admin, subject="For parents off social media", body=UPDATE, only_no_social=True))
    run_tick_for_app(app)
    assert [r.rcpt_tos for r in smtp.wait_for(1)] == [["no-social@example.org"]]


def test_announcement_email_meets_e1_to_e6_and_one_click_works(app, clock, smtp):
    """Both parts, every header, no line over 998 octets on the wire; the header URL unsubscribes by one-click."""
    with app.app_context():
        member_id = add_member("reader@example.org", clock=clock, name="Zoë O'Brien, “Rosa”")
    admin = logged_in_admin(app, clock)
    send_now(admin, compose(admin, subject="Inspectors are coming back", body=REVISIT))
    run_tick_for_app(app)
    received = smtp.wait_for(1)[0]
    assert max(len(line) for line in wire_lines(received.raw)) <= 998
    assert b"\n" not in received.raw.replace(b"\r\n", b"")
    message = received.message
    text, html = parts(message)
    assert sorted(set(text_links(text))) == sorted({h for h in html_links(html) if h.startswith("http")})
    assert "https://www.smartsurvey.co.uk/s/BuryRe-VisitLASEND/?src=email&utm_campaign=none" in text
    assert "nine hundred and ninety-eight octets" in flat(text) and "nine hundred and ninety-eight octets" in html
    assert message["List-Id"] == "Test Parent Carer Forum <members.forum.test>"
    assert message["Auto-Submitted"] is None
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    header_url = re.fullmatch(r"<(https://forum\.test/unsubscribe/[^>]+)>", str(message["List-Unsubscribe"])).group(1)
    assert header_url == link_to(message, "/unsubscribe/")
    assert "/preferences/" in link_to(message, "/preferences/")
    assert "hello@forum.test" in text and "mailto:hello@forum.test" in html
    assert "because you joined our email list" in flat(text)
    assert message["To"].addresses[0].display_name == "Zoë O'Brien, “Rosa”"
    assert message["To"].addresses[0].addr_spec == "reader@example.org"
    assert '<html lang="en-GB">' in html and "<title>Inspectors are coming back</title>" in html
    assert "<h1" in html and "<h2" in html and 'role="presentation"' in html
    assert "<img" not in html  # no tracking pixel (C4)
    assert all(link.startswith(("https://www.smartsurvey", "https://forum.test/", "https://www.gov.uk", "mailto:"))
               for link in html_links(html))  # no click-tracking redirects (C4)

    # RFC 8058: a fresh client, no cookie, no CSRF token, no redirect.
    one_click = app.test_client().post(path_of(header_url), data={"List-Unsubscribe": "One-Click"})
    assert one_click.status_code == 200
    assert "Location" not in one_click.headers
    with app.app_context():
        assert db.session.get(Member, member_id).status is MemberStatus.UNSUBSCRIBED
        event = db.session.scalars(select(ConsentEvent).where(ConsentEvent.action == ConsentAction.WITHDRAWN)).one()
        assert event.method.value == "one_click"


def test_dkim_signature_covers_list_unsubscribe_and_verifies(make_app, clock, smtp, tmp_path):
    """E4: with a key configured, the received bytes verify, and the signature covers both List-Unsubscribe headers."""
    key_path = tmp_path / "dkim.key"
    subprocess.run(["openssl", "genrsa", "-out", str(key_path), "2048"], check=True, capture_output=True)
    public = subprocess.run(
        ["openssl", "rsa", "-in", str(key_path), "-pubout", "-outform", "DER"], check=True, capture_output=True
    ).stdout
    import base64

    txt = b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)
    app = make_app(MAILER_DKIM_KEY_FILE=str(key_path), MAILER_DKIM_SELECTOR="mail2026")
    with app.app_context():
        add_member("signed@example.org", clock=clock)
    admin = logged_in_admin(app, clock)
    send_now(admin, compose(admin, subject="Signed", body=UPDATE))
    run_tick_for_app(app)
    raw = smtp.wait_for(1)[0].raw

    def dns(name: bytes, timeout: int = 5) -> bytes:
        assert name == b"mail2026._domainkey.forum.test."
        return txt

    assert dkim.verify(raw, dnsfunc=dns)
    signature = raw.split(b"DKIM-Signature:", 1)[1].split(b"\r\n\r\n", 1)[0]
    signed_headers = re.search(
        rb"h=([^;]+);", signature.replace(b"\r\n", b"").replace(b" ", b"").replace(b"\t", b"")
    ).group(1)
    assert b"list-unsubscribe" in signed_headers.split(b":") and b"list-unsubscribe-post" in signed_headers.split(b":")
    tampered = raw.replace(b"One-Click", b"One-Clack", 1)
    assert not dkim.verify(tampered, dnsfunc=dns)


@pytest.mark.parametrize("recheck_seconds", [0.02, 0.1], ids=["every-message", "every-few-messages"])
def test_unsubscribe_while_sending_stops_further_mail(make_app, clock, smtp, recheck_seconds):
    """S5: a member who leaves while a slowed send runs gets nothing that starts after their POST returned,
    whether the engine looks again before every message or only every few (the answer covers the rest)."""
    app = make_app(MAILER_RECHECK_SECONDS=recheck_seconds, MAILER_BATCH_SIZE=200)
    ids = add_members(app, clock, 60)
    leaver_email = "member00050@example.org"
    admin = logged_in_admin(app, clock)
    send_now(admin, compose(admin, subject="Long send", body=UPDATE))
    smtp.slow_down(0.03)
    worker = threading.Thread(target=run_tick_for_app, args=(app,))
    worker.start()
    smtp.wait_for(5, timeout=20)
    with app.app_context():
        from mailer.mail.tokens import Purpose, make_token

        token = make_token(app.config["SECRET_KEY"], Purpose.UNSUBSCRIBE, link_key_of(app, ids[50]), 1, clock=clock)
    response = app.test_client().post(f"/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200
    arrived_before = len(smtp.received)
    assert arrived_before < 50, "the send finished before the test could unsubscribe; slow the sink down more"
    worker.join(timeout=60)
    assert not worker.is_alive()
    assert smtp.to(leaver_email) == []
    assert len(smtp.received) == 59
    with app.app_context():
        state = db.session.scalar(select(Delivery.state).where(Delivery.member_id == ids[50]))
        assert state is DeliveryState.SKIPPED


def test_sanitised_body_in_preview_and_sent_mail(app, clock, smtp):
    """Scripts, event handlers and javascript: links are gone from the preview and from the email."""
    with app.app_context():
        add_member("safe@example.org", clock=clock)
    admin = logged_in_admin(app, clock)
    body = (
        "# Hello\n\n<script>alert('x')</script>\n\n<img src=x onerror=alert(1)>\n\n"
        "[click me](javascript:alert(2)) and <a href=\"javascript:alert(3)\">raw</a>\n"
    )
    announcement_id = compose(admin, subject="Sanitise me", body=body)
    preview = admin.get(f"/admin/announcements/{announcement_id}/preview.html").get_data(as_text=True)
    send_now(admin, announcement_id)
    run_tick_for_app(app)
    text, html = parts(smtp.wait_for(1)[0].message)
    for rendered in (preview, html):
        elements = elements_of(rendered)
        assert not {"script", "img", "iframe"} & {tag for tag, _ in elements}
        assert not [name for _, attrs in elements for name, _ in attrs if name.startswith("on")]
        assert not [link for link in html_links(rendered) if "javascript" in link.lower()]
    assert "alert" not in " ".join(text_links(text))


def test_test_send_goes_to_the_admin_marked_as_a_test(app, clock, smtp):
    """'Send a test to me' goes through the outbox to the admin only, marked [Test], with both parts."""
    with app.app_context():
        add_member("member@example.org", clock=clock)
    admin = logged_in_admin(app, clock)
    announcement_id = compose(admin, subject="Survey closes Friday", body=REVISIT)
    page = f"/admin/announcements/{announcement_id}"
    assert admin_post(admin, page, f"{page}/test").status_code == 303
    run_tick_for_app(app)
    (received,) = smtp.wait_for(1)
    assert received.rcpt_tos == ["admin@forum.example"]
    assert received.message["Subject"] == "[Test] Survey closes Friday"
    assert received.message["Auto-Submitted"] == "auto-generated"
    parts(received.message)
    with app.app_context():
        assert db.session.get(Announcement, announcement_id).state is AnnouncementState.DRAFT
        assert db.session.scalar(select(func.count()).select_from(Delivery)) == 0


def test_pause_and_resume(app, clock, smtp):
    """A paused announcement hands out nothing until resumed; then the rest goes."""
    add_members(app, clock, 3)
    admin = logged_in_admin(app, clock)
    announcement_id = compose(admin, subject="Pause me", body=UPDATE)
    send_now(admin, announcement_id)
    with app.app_context():
        from mailer.engine.announcement_sender import DeliverySummary, start_due_announcements

        start_due_announcements(
            db.session, clock=clock, hold_after=__import__("datetime").timedelta(hours=6), summary=DeliverySummary()
        )
    page = f"/admin/announcements/{announcement_id}"
    assert admin_post(admin, page, f"{page}/pause").status_code == 303
    run_tick_for_app(app)
    assert smtp.received == []
    progress = admin.get(f"{page}/progress.json").get_json()
    assert progress["state"] == "paused" and progress["pending"] == 3
    assert admin_post(admin, page, f"{page}/resume").status_code == 303
    run_tick_for_app(app)
    assert len(smtp.wait_for(3)) == 3
    assert admin.get(f"{page}/progress.json").get_json() | {} == {
        "state": "sent", "total": 3, "sent": 3, "pending": 0, "failed": 0, "skipped": 0, "done": 3, "percent": 100
    }


def test_report_shows_who_got_what_and_the_servers_refusal(app, clock, smtp):
    """After sending, the report lists each member's outcome and the server's answer for a 550."""
    with app.app_context():
        add_member("fine@example.org", clock=clock)
        add_member("gone@example.org", clock=clock)
    smtp.reply_to_rcpt("gone@example.org", "550 5.1.1 mailbox unavailable")
    admin = logged_in_admin(app, clock)
    announcement_id = compose(admin, subject="Report me", body=UPDATE)
    send_now(admin, announcement_id)
    run_tick_for_app(app)
    smtp.wait_for(1)
    report = admin.get(f"/admin/announcements/{announcement_id}/report").get_data(as_text=True)
    assert "fine@example.org" in report and "Sent" in report
    assert "gone@example.org" in report and "550 5.1.1 mailbox unavailable" in report
    failures = admin.get(f"/admin/announcements/{announcement_id}/report?show=failed").get_data(as_text=True)
    assert "gone@example.org" in failures and "fine@example.org" not in failures
    with app.app_context():
        assert db.session.scalar(select(Member.bounce_count).where(Member.email == "gone@example.org")) == 1


def test_archive_shows_public_announcements_without_member_links(app, clock, smtp):
    """J7: a sent announcement marked public is listed and readable; others are not; no personal links."""
    with app.app_context():
        add_member("archive@example.org", clock=clock)
    admin = logged_in_admin(app, clock)
    public_id = compose(admin, subject="Public news", body=UPDATE)
    private_id = compose(admin, subject="Private news", body=UPDATE)
    send_now(admin, public_id)
    send_now(admin, private_id)
    run_tick_for_app(app)
    page = f"/admin/announcements/{public_id}"
    assert admin_post(admin, page, f"{page}/publish", {"public": "1"}).status_code == 303
    visitor = app.test_client()
    listing = visitor.get("/archive").get_data(as_text=True)
    assert "Public news" in listing and "Private news" not in listing
    item = visitor.get(f"/archive/{public_id}")
    assert item.status_code == 200
    body = item.get_data(as_text=True)
    assert "bridging the gap" in body and "/unsubscribe/" not in body and "/preferences/" not in body
    assert visitor.get(f"/archive/{private_id}").status_code == 404


def test_admin_pages_need_login(app):
    """Every /admin/ page sends a visitor to the login page; actions change nothing."""
    client = app.test_client()
    for path in ("/admin/", "/admin/announcements/new", "/admin/announcements/1", "/admin/announcements/1/report"):
        response = client.get(path)
        assert response.status_code == 302 and "/admin/login" in response.headers["Location"], path
    response = client.post("/admin/announcements/new", data={"subject": "x", "body": "y"})
    assert response.status_code in (302, 400)
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Announcement)) == 0


def test_create_admin_command_and_login(app, clock):
    """`flask create-admin EMAIL` takes the password from MAILER_ADMIN_PASSWORD, makes an owner and says so; a
    short password is refused."""
    runner = app.test_cli_runner()
    short = runner.invoke(args=["create-admin", "volunteer@forum.example"], env={"MAILER_ADMIN_PASSWORD": "short"})
    assert short.exit_code != 0 and "at least 12 characters" in short.output
    result = runner.invoke(
        args=["create-admin", "volunteer@forum.example"], env={"MAILER_ADMIN_PASSWORD": "a good long passphrase"}
    )
    assert result.exit_code == 0, result.output
    assert "is an owner" in result.output
    with app.app_context():
        assert db.session.scalar(select(Admin.role).where(Admin.email == "volunteer@forum.example")) == AdminRole.OWNER
    client = app.test_client()
    token = csrf_token(client.get("/admin/login").get_data(as_text=True))
    wrong = client.post(
        "/admin/login", data={"csrf_token": token, "email": "volunteer@forum.example", "password": "nope nope nope"}
    )
    assert wrong.status_code == 400 and "not right" in wrong.get_data(as_text=True)
    right = client.post(
        "/admin/login",
        data={"csrf_token": token, "email": "volunteer@forum.example", "password": "a good long passphrase"},
    )
    assert right.status_code == 303
    assert client.get("/admin/").status_code == 200
    with app.app_context():
        stored = db.session.scalar(select(Admin.password_hash))
        assert stored.startswith("scrypt:") and "a good long passphrase" not in stored


def test_login_is_rate_limited_per_account_and_address(make_app, clock):
    """Repeated wrong passwords for one account from one address get a clear 429 page; another address
    is counted on its own (issue 15: an attacker must not be able to lock the real admin out)."""
    app = make_app(RATELIMIT_ENABLED=True, MAILER_LOGIN_RATE_LIMIT_ACCOUNT="3 per 15 minutes")
    client = app.test_client()
    token = csrf_token(client.get("/admin/login").get_data(as_text=True))
    statuses = []
    for ip in ["10.0.0.1"] * 4 + ["10.0.0.2"]:
        response = client.post(
            "/admin/login",
            data={"csrf_token": token, "email": "someone@forum.example", "password": "wrong password"},
            environ_base={"REMOTE_ADDR": ip},
        )
        statuses.append(response.status_code)
        if len(statuses) == 4:
            assert "Too many attempts" in response.get_data(as_text=True)
    assert statuses == [400, 400, 400, 429, 400]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"subject": "", "body": "Hello"}, "Enter a subject."),
        ({"subject": "Hi", "body": ""}, "Write the announcement."),
        ({"subject": "A\r\nBcc: evil@example.org", "body": "Hello"}, "one line"),
        ({"subject": "x" * 201, "body": "Hello"}, "200 characters or fewer"),
        ({"subject": "Big", "body": "x" * 100_001}, "100,000 characters or fewer"),
        ({"subject": "Groups", "body": "Hello", "groups": ["999"]}, "not a valid choice"),
    ],
)
def test_bad_compose_input_is_refused_and_saves_nothing(app, clock, data, message):
    """Empty, multi-line, oversized fields and unknown groups get a clear 400; nothing is saved."""
    admin = logged_in_admin(app, clock)
    response = admin_post(admin, "/admin/announcements/new", "/admin/announcements/new", data)
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Announcement)) == 0


def test_one_megabyte_body_is_refused(app, clock):
    """A 1 MB body is over the request limit: a clear 413 page, nothing saved."""
    admin = logged_in_admin(app, clock)
    response = admin_post(
        admin, "/admin/announcements/new", "/admin/announcements/new", {"subject": "x", "body": "y" * (1024 * 1024)}
    )
    assert response.status_code == 413
    assert "too much" in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Announcement)) == 0


def test_wrong_state_and_wrong_method_are_clear_4xx(app, clock, smtp):
    """Pausing a draft is a 409 page, GET on an action is 405, an unknown announcement 404; nothing changes."""
    admin = logged_in_admin(app, clock)
    announcement_id = compose(admin, subject="Draft", body=UPDATE)
    page = f"/admin/announcements/{announcement_id}"
    paused = admin_post(admin, page, f"{page}/pause")
    assert paused.status_code == 409 and "draft" in paused.get_data(as_text=True)
    assert admin.get(f"{page}/pause").status_code == 405
    assert admin.get("/admin/announcements/999").status_code == 404
    with app.app_context():
        assert db.session.get(Announcement, announcement_id).state is AnnouncementState.DRAFT


def test_unsubscribe_bad_tokens_and_methods(app, clock):
    """Tampered unsubscribe tokens get a 400 page, PUT gets 405, and the member stays subscribed."""
    with app.app_context():
        member_id = add_member("stay@example.org", clock=clock)
        from mailer.mail.tokens import Purpose, make_token

        token = make_token(app.config["SECRET_KEY"], Purpose.UNSUBSCRIBE, link_key_of(app, member_id), 1, clock=clock)
    client = app.test_client()
    tampered = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    assert client.get(f"/unsubscribe/{tampered}").status_code == 400
    assert client.post(f"/unsubscribe/{tampered}", data={"List-Unsubscribe": "One-Click"}).status_code == 400
    assert client.put(f"/unsubscribe/{token}").status_code == 405
    assert client.post(f"/unsubscribe/{token}", data={}).status_code == 400  # browser form without CSRF
    page = client.get(f"/unsubscribe/{token}")
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    assert page.headers["Referrer-Policy"] == "no-referrer"
    with app.app_context():
        assert db.session.get(Member, member_id).status is MemberStatus.MEMBER
    assert (
        client.post(f"/unsubscribe/{token}", data={"csrf_token": csrf_token(page.get_data(as_text=True))}).status_code
        == 200
    )
    with app.app_context():
        assert db.session.get(Member, member_id).status is MemberStatus.UNSUBSCRIBED


def test_scheduled_send_waits_for_its_time(app, clock, smtp):
    """A scheduled announcement goes out on the first tick after its time, not before."""
    clock.set(datetime(2026, 3, 28, 12, 0, tzinfo=UTC))
    with app.app_context():
        add_member("later@example.org", clock=clock)
    admin = logged_in_admin(app, clock)
    announcement_id = compose(admin, subject="Tomorrow", body=UPDATE)
    page = f"/admin/announcements/{announcement_id}"
    response = admin_post(admin, page, f"{page}/schedule", {"send_date": "2026-03-29", "send_time": "09:00"})
    assert response.status_code == 303
    with app.app_context():
        item = db.session.get(Announcement, announcement_id)
        assert item.state is AnnouncementState.SCHEDULED
        assert item.scheduled_at == datetime(2026, 3, 29, 8, 0, tzinfo=UTC)  # BST began at 01:00 UTC that day
    run_tick_for_app(app)
    assert smtp.received == []
    clock.set(datetime(2026, 3, 29, 8, 0, 30, tzinfo=UTC))
    run_tick_for_app(app)
    assert smtp.wait_for(1)[0].rcpt_tos == ["later@example.org"]


@pytest.mark.parametrize(
    ("day", "time", "status", "expected_utc", "message"),
    [
        ("2026-03-29", "00:59", 303, datetime(2026, 3, 29, 0, 59, tzinfo=UTC), None),
        ("2026-03-29", "01:30", 400, None, "does not exist"),
        ("2026-03-29", "02:00", 303, datetime(2026, 3, 29, 1, 0, tzinfo=UTC), None),
        ("2026-10-25", "00:30", 303, datetime(2026, 10, 24, 23, 30, tzinfo=UTC), None),
        ("2026-10-25", "01:30", 400, None, "happens twice"),
        ("2026-10-25", "02:00", 303, datetime(2026, 10, 25, 2, 0, tzinfo=UTC), None),
        ("2026-03-01", "10:00", 400, None, "in the future"),
        ("2026-02-30", "10:00", 400, None, "date"),
    ],
)
def test_schedule_across_the_clock_changes(app, clock, day, time, status, expected_utc, message):
    """London times become UTC correctly on both changeover days; missing, doubled and past times are refused."""
    clock.set(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    with app.app_context():
        add_member("when@example.org", clock=clock)  # an audience of nobody cannot be scheduled (issue 18)
    admin = logged_in_admin(app, clock)
    announcement_id = compose(admin, subject="When?", body=UPDATE)
    page = f"/admin/announcements/{announcement_id}"
    response = admin_post(admin, page, f"{page}/schedule", {"send_date": day, "send_time": time})
    assert response.status_code == status
    with app.app_context():
        item = db.session.get(Announcement, announcement_id)
        if expected_utc:
            assert item.scheduled_at == expected_utc
        else:
            assert message in response.get_data(as_text=True)
            assert item.state is AnnouncementState.DRAFT and item.scheduled_at is None


def test_overdue_announcement_is_held_for_a_decision(app, clock, smtp):
    """An announcement due hours ago while no worker ran is held, not sent late; 'send now' sends it."""
    with app.app_context():
        add_member("held@example.org", clock=clock)
    admin = logged_in_admin(app, clock)
    announcement_id = compose(admin, subject="Held", body=UPDATE)
    page = f"/admin/announcements/{announcement_id}"
    admin_post(admin, page, f"{page}/schedule", {"send_date": "2026-03-02", "send_time": "12:00"})
    clock.advance(hours=12)
    summary = run_tick_for_app(app)
    assert summary.deliveries.held == [announcement_id]
    assert smtp.received == []
    admin = logged_in_admin(app, clock)  # 12 hours away: the idle session has ended, the admin logs in again
    assert "Waiting for your decision" in admin.get(page).get_data(as_text=True)
    send_now(admin, announcement_id)
    run_tick_for_app(app)
    assert smtp.wait_for(1)[0].rcpt_tos == ["held@example.org"]


def test_edit_and_cancel_until_sending_starts(app, clock, smtp):
    """Drafts and scheduled announcements can be edited and cancelled; once sent, editing is refused."""
    with app.app_context():
        add_member("edit@example.org", clock=clock)
    admin = logged_in_admin(app, clock)
    cancelled_id = compose(admin, subject="Cancel me", body=UPDATE)
    page = f"/admin/announcements/{cancelled_id}"
    assert admin_post(admin, page, f"{page}/cancel").status_code == 303
    sent_id = compose(admin, subject="First subject", body=UPDATE)
    page = f"/admin/announcements/{sent_id}"
    edit = admin_post(admin, f"{page}/edit", f"{page}/edit", {"subject": "Second subject", "body": UPDATE})
    assert edit.status_code == 303
    send_now(admin, sent_id)
    run_tick_for_app(app)
    assert [r.message["Subject"] for r in smtp.wait_for(1)] == ["Second subject"]
    refused = admin_post(admin, page, f"{page}/edit", {"subject": "Third", "body": UPDATE})
    assert refused.status_code == 409
    with app.app_context():
        assert db.session.get(Announcement, cancelled_id).state is AnnouncementState.CANCELLED
        assert db.session.get(Announcement, sent_id).subject == "Second subject"
