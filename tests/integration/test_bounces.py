"""Bounces that come back later (issue 8, S4, C1): VERP envelopes, the bounce SMTP port, DSN processing and policy.

DSNs from tests/data/dsn are filled in with the VERP address a real send used, delivered
with smtplib into the bounce server (aiosmtpd on loopback), and processed by the worker's
bounce pass, on SQLite and PostgreSQL."""

from __future__ import annotations

import logging
import smtplib
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from mailer.extensions import db
from mailer.mail.outbox import enqueue_mail
from mailer.models import (
    BounceEvent,
    BounceKind,
    BounceMessage,
    BounceOutcome,
    ConsentAction,
    ConsentEvent,
    ConsentMethod,
    MailKind,
    Member,
    MemberStatus,
)
from mailer.settings import settings_of
from mailer.worker.bounce_intake import bounce_controller
from mailer.worker.runner import process_bounces_for_app, run_tick_for_app
from support.factories import add_member, due_announcement, logged_in_admin
from support.smtp_sink import free_port

CORPUS = Path(__file__).resolve().parent.parent / "data" / "dsn"
BOUNCES = "bounces@forum.test"


@pytest.fixture
def bounce_app(make_app):  # type: ignore[no-untyped-def]
    return make_app(MAILER_BOUNCE_ADDRESS=BOUNCES, MAILER_BOUNCE_THRESHOLD=3, MAILER_BOUNCE_DECAY_DAYS=60)


@pytest.fixture
def bounce_port(bounce_app):  # type: ignore[no-untyped-def]
    controller = bounce_controller(bounce_app, host="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield controller.port
    finally:
        controller.stop()


def send_announcement(app, clock, smtp, subject="Forum news"):  # type: ignore[no-untyped-def]
    """Send one announcement through the engine; return {recipient: envelope sender} as the relay saw it."""
    before = len(smtp.received)
    due_announcement(app, clock, subject=subject)
    run_tick_for_app(app)
    return {r.rcpt_tos[0]: r.mail_from for r in smtp.received[before:]}


def dsn(name: str, verp: str, recipient: str) -> bytes:
    text = (CORPUS / name).read_text("utf-8").replace("{{VERP}}", verp).replace("{{RCPT}}", recipient)
    return text.replace("\n", "\r\n").encode("utf-8")


def deliver(port: int, raw: bytes, rcpt: str) -> None:
    """Like a relay returning a DSN: null sender, to the VERP address."""
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.sendmail("<>", [rcpt], raw)


def member_row(app, member_id):  # type: ignore[no-untyped-def]
    with app.app_context():
        member = db.session.get(Member, member_id)
        db.session.expunge(member)
        return member


def test_envelope_sender_is_verp_for_announcements_and_outbox(bounce_app, clock, smtp):
    """Each delivery and each transactional mail goes out with its own signed bounces+token address (issue 8)."""
    with bounce_app.app_context():
        add_member("sam@example.org", clock=clock)
        add_member("alex@example.org", clock=clock)
    senders = send_announcement(bounce_app, clock, smtp)
    assert set(senders) == {"sam@example.org", "alex@example.org"}
    assert len(set(senders.values())) == 2, "one envelope per delivery"
    for sender in senders.values():
        assert sender.startswith("bounces+d") and sender.endswith("@forum.test")
        assert "sam" not in sender and "alex" not in sender, "the address is not in the token"
    client = bounce_app.test_client()
    from support.web import join

    join(client, email="new.parent@example.org")
    run_tick_for_app(bounce_app)
    confirm = smtp.to("new.parent@example.org")[-1]
    assert confirm.mail_from.startswith("bounces+o") and confirm.mail_from.endswith("@forum.test")


def test_verp_off_uses_the_fixed_bounce_address(make_app, clock, smtp):
    """MAILER_VERP off: every message has the one configured bounce address."""
    app = make_app(MAILER_BOUNCE_ADDRESS=BOUNCES, MAILER_VERP=False)
    with app.app_context():
        add_member("sam@example.org", clock=clock)
    assert send_announcement(app, clock, smtp) == {"sam@example.org": BOUNCES}


@pytest.mark.parametrize(
    ("name", "counted"),
    [
        ("rfc3464_permanent.eml", 1),
        ("exim_permanent.eml", 1),
        ("postfix_permanent.eml", 1),
        ("microsoft_permanent.eml", 1),
        ("gmail_permanent.eml", 1),
        ("rfc3464_delayed.eml", 0),
        ("exim_delayed.eml", 0),
    ],
)
def test_dsn_through_the_bounce_port_counts_permanent_failures_only(
    bounce_app, bounce_port, clock, smtp, name, counted
):
    """A DSN sent to the bounce port is stored, then processed: permanent ones count, delays are only recorded."""
    with bounce_app.app_context():
        sam = add_member("sam@example.org", clock=clock)
    verp = send_announcement(bounce_app, clock, smtp)["sam@example.org"]
    deliver(bounce_port, dsn(name, verp, "sam@example.org"), verp)
    with bounce_app.app_context():
        stored = db.session.scalars(select(BounceMessage)).one()
        assert stored.processed_at is None and stored.rcpt_to == verp and stored.mail_from == ""
    summary = process_bounces_for_app(bounce_app)
    assert summary.processed == 1 and summary.errors == 0
    assert member_row(bounce_app, sam).bounce_count == counted
    with bounce_app.app_context():
        event = db.session.scalars(select(BounceEvent)).one()
        assert event.member_id == sam and event.delivery_id is not None
        assert event.kind is (BounceKind.PERMANENT if counted else BounceKind.TEMPORARY)
        assert event.reason
        message = db.session.scalars(select(BounceMessage)).one()
        assert message.processed_at is not None and message.outcome is BounceOutcome.MATCHED
        assert message.delivery_id == event.delivery_id


def test_same_dsn_twice_counts_once(bounce_app, bounce_port, clock, smtp):
    """A relay that sends the same DSN twice (or a crash after counting) never counts the failure twice."""
    with bounce_app.app_context():
        sam = add_member("sam@example.org", clock=clock)
    verp = send_announcement(bounce_app, clock, smtp)["sam@example.org"]
    raw = dsn("rfc3464_permanent.eml", verp, "sam@example.org")
    deliver(bounce_port, raw, verp)
    process_bounces_for_app(bounce_app)
    deliver(bounce_port, raw, verp)
    assert process_bounces_for_app(bounce_app).processed == 1
    assert process_bounces_for_app(bounce_app).processed == 0, "each message is processed once"
    assert member_row(bounce_app, sam).bounce_count == 1
    with bounce_app.app_context():
        assert db.session.scalar(select(func.count()).select_from(BounceEvent)) == 1
        assert db.session.scalar(select(func.count()).where(BounceMessage.processed_at.is_(None))) == 0


def test_smtp_time_refusal_and_later_dsn_for_one_delivery_count_once(bounce_app, bounce_port, clock, smtp):
    """Both paths go through one rule: a delivery refused with 550 and then reported by a DSN is one failure."""
    with bounce_app.app_context():
        sam = add_member("sam@example.org", clock=clock)
    smtp.reply_to_rcpt("sam@example.org", "550 5.1.1 no such user")
    due_announcement(bounce_app, clock)
    assert run_tick_for_app(bounce_app).deliveries.failed == 1
    assert member_row(bounce_app, sam).bounce_count == 1
    with bounce_app.app_context():
        from mailer.mail.verp import VerpKind, verp_address, verp_key
        from mailer.models import Delivery

        delivery_id = db.session.scalar(select(Delivery.id))
    verp = verp_address(verp_key(bounce_app.config["SECRET_KEY"]), BOUNCES, VerpKind.DELIVERY, delivery_id)
    deliver(bounce_port, dsn("exim_permanent.eml", verp, "sam@example.org"), verp)
    process_bounces_for_app(bounce_app)
    assert member_row(bounce_app, sam).bounce_count == 1


def test_threshold_with_decay_suppresses_and_admin_sees_why(bounce_app, bounce_port, clock, smtp):
    """Three permanent failures within 60 days suppress the member; older ones have expired (S4, injected clock)."""
    with bounce_app.app_context():
        sam = add_member("sam@example.org", clock=clock)
        add_member("alex@example.org", clock=clock)

    def bounce_next(subject: str) -> None:
        verp = send_announcement(bounce_app, clock, smtp, subject=subject)["sam@example.org"]
        deliver(bounce_port, dsn("gmail_permanent.eml", verp, "sam@example.org"), verp)
        process_bounces_for_app(bounce_app)

    bounce_next("Day 0")
    clock.advance(days=30)
    bounce_next("Day 30")
    assert member_row(bounce_app, sam).bounce_count == 2
    clock.advance(days=40)  # day 70: the day-0 bounce is outside the 60-day window
    bounce_next("Day 70")
    member = member_row(bounce_app, sam)
    assert member.bounce_count == 2 and member.status is MemberStatus.MEMBER
    clock.advance(days=5)
    bounce_next("Day 75")
    member = member_row(bounce_app, sam)
    assert member.bounce_count == 3 and member.status is MemberStatus.UNSUBSCRIBED
    with bounce_app.app_context():
        event = db.session.scalars(select(ConsentEvent).where(ConsentEvent.action == ConsentAction.SUPPRESSED)).one()
        assert event.member_id == sam and event.method is ConsentMethod.SYSTEM
        assert "3 permanent delivery failures within 60 days" in event.detail["reason"]
        assert event.detail["kind"] == "bounce"
    assert "sam@example.org" not in send_announcement(bounce_app, clock, smtp, subject="After")
    admin = logged_in_admin(bounce_app, clock)
    page = admin.get(f"/admin/members/{sam}").get_data(as_text=True)
    assert "Bounces and complaints" in page and "The email account that you tried to reach does not exist" in page
    assert "3 permanent delivery failures within 60 days" in page


def test_arf_complaint_unsubscribes_at_once(bounce_app, bounce_port, clock, smtp):
    """A feedback-loop complaint takes the member off the list at once, recorded as a withdrawal by the system."""
    with bounce_app.app_context():
        sam = add_member("sam@example.org", clock=clock)
    verp = send_announcement(bounce_app, clock, smtp)["sam@example.org"]
    # Feedback loops report to the address registered with them; the token is in the quoted Return-Path.
    deliver(bounce_port, dsn("arf_complaint.eml", verp, "sam@example.org"), BOUNCES)  # the address given to the FBL
    assert process_bounces_for_app(bounce_app).complaints == 1
    member = member_row(bounce_app, sam)
    assert member.status is MemberStatus.UNSUBSCRIBED and member.bounce_count == 0
    with bounce_app.app_context():
        event = db.session.scalars(select(ConsentEvent).where(ConsentEvent.action == ConsentAction.WITHDRAWN)).one()
        assert event.member_id == sam and event.method is ConsentMethod.SYSTEM
        assert event.detail["reason"] == "complaint"
    assert "sam@example.org" not in send_announcement(bounce_app, clock, smtp, subject="After")


def test_a_late_complaint_about_a_purged_message_never_reaches_whoever_got_the_next_one(bounce_app, bounce_port,
                                                                                       clock, smtp):
    """Issue 15: a VERP address names an outbox row by id. Once the purge has emptied the outbox, the next
    message must get a new id (AUTOINCREMENT), so a complaint quoting the old address matches nothing and
    does not unsubscribe the member the next message went to."""
    from support.web import join

    join(bounce_app.test_client(), email="outsider@example.org")
    run_tick_for_app(bounce_app)
    old_verp = smtp.to("outsider@example.org")[-1].mail_from
    assert old_verp.startswith("bounces+o")
    clock.advance(days=31)
    result = bounce_app.test_cli_runner().invoke(args=["purge"])
    assert result.exit_code == 0 and "1 old outbox" in result.output, result.output
    with bounce_app.app_context():
        victim = add_member("victim@example.org", clock=clock)
        enqueue_mail(db.session, MailKind.PREFERENCES_LINK, member_id=victim, clock=clock)
        db.session.commit()
    run_tick_for_app(bounce_app)
    new_verp = smtp.to("victim@example.org")[-1].mail_from
    assert new_verp != old_verp, "the purged row's id was handed out again"

    deliver(bounce_port, dsn("arf_complaint.eml", old_verp, "outsider@example.org"), BOUNCES)
    summary = process_bounces_for_app(bounce_app)
    assert (summary.complaints, summary.unmatched) == (0, 1)
    assert member_row(bounce_app, victim).status is MemberStatus.MEMBER


def test_twenty_megabyte_message_is_refused_and_nothing_stored(bounce_app, bounce_port):
    """Over the size limit the port answers 552 (with and without SIZE), and stores nothing."""
    big = b"Subject: big\r\n\r\n" + (b"x" * 998 + b"\r\n") * (20 * 1024 * 1024 // 1000)
    with pytest.raises(smtplib.SMTPException) as refused:
        deliver(bounce_port, big, "bounces+d1-0000000000000000@forum.test")
    assert "552" in str(refused.value)
    with smtplib.SMTP("127.0.0.1", bounce_port, timeout=60) as client:  # no SIZE parameter: refused after DATA
        client.ehlo()
        assert client.mail("<>")[0] == 250
        assert client.rcpt(BOUNCES)[0] == 250
        code, _ = client.data(big)
        assert code == 552
    with bounce_app.app_context():
        assert db.session.scalar(select(func.count()).select_from(BounceMessage)) == 0


def test_forged_token_is_logged_kept_unmatched_and_changes_nothing(bounce_app, bounce_port, clock, smtp, caplog):
    """A DSN whose VERP signature fails names nobody: refused when sent to the forged address; sent to the
    bounce address with the forged one quoted, logged, shown to the admin, no member touched."""
    with bounce_app.app_context():
        sam = add_member("sam@example.org", clock=clock)
    verp = send_announcement(bounce_app, clock, smtp)["sam@example.org"]
    local, domain = verp.split("@")
    forged = f"{local[:-1]}{'0' if local[-1] != '0' else '1'}@{domain}"
    with pytest.raises(smtplib.SMTPRecipientsRefused):  # to the forged address itself: refused at RCPT
        deliver(bounce_port, dsn("rfc3464_permanent.eml", forged, "sam@example.org"), forged)
    deliver(bounce_port, dsn("rfc3464_permanent.eml", forged, "sam@example.org"), BOUNCES)  # quoted in the body
    with caplog.at_level(logging.WARNING, logger="mailer.bounces.records"):
        summary = process_bounces_for_app(bounce_app)
    assert summary.unmatched == 1 and summary.counted == 0
    assert any("unmatched" in r.getMessage() and "signature" in r.getMessage() for r in caplog.records)
    assert not any("sam@example.org" in r.getMessage() for r in caplog.records), "logs name no address"
    member = member_row(bounce_app, sam)
    assert member.bounce_count == 0 and member.status is MemberStatus.MEMBER
    with bounce_app.app_context():
        assert db.session.scalar(select(func.count()).select_from(BounceEvent)) == 0
        message = db.session.scalars(select(BounceMessage)).one()
        assert message.outcome is BounceOutcome.UNMATCHED and message.delivery_id is None
    page = logged_in_admin(bounce_app, clock).get("/admin/bounces").get_data(as_text=True)
    assert "Delivery Status Notification (Failure)" in page and "signature did not match" in page


def test_malformed_mime_does_not_stop_the_worker(bounce_app, bounce_port, clock, smtp):
    """Broken messages are processed (unmatched or not a bounce) and the next good DSN is still counted."""
    with bounce_app.app_context():
        sam = add_member("sam@example.org", clock=clock)
    verp = send_announcement(bounce_app, clock, smtp)["sam@example.org"]
    broken = [
        b"Content-Type: multipart/report; report-type=delivery-status; boundary=\"x\"\r\n\r\n--x\r\n"
        b"Content-Type: message/delivery-status\r\n\r\nAction: failed\r\nStatus: 5.1.1\r\n",
        b"Content-Type: multipart/mixed\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!not base64!!!\r\n",
        b"\x00\x01\x02 not even headers\r\n\r\n\xff\xfe",
        ("To: " + verp + "\r\nContent-Type: message/delivery-status\r\n\r\n\r\n").encode(),
    ]
    for raw in broken:
        deliver(bounce_port, raw, BOUNCES)
    deliver(bounce_port, dsn("postfix_permanent.eml", verp, "sam@example.org"), verp)
    summary = process_bounces_for_app(bounce_app)
    assert summary.processed + summary.errors == len(broken) + 1 and summary.counted == 1
    assert member_row(bounce_app, sam).bounce_count == 1
    with bounce_app.app_context():
        assert db.session.scalar(select(func.count()).where(BounceMessage.processed_at.is_(None))) == 0


def test_bounces_page_lists_recent_near_threshold_and_unmatched(bounce_app, bounce_port, clock, smtp):
    """The admin page shows the bounce with reason, member and announcement, and who is near the threshold."""
    with bounce_app.app_context():
        add_member("sam@example.org", clock=clock)
    verp = send_announcement(bounce_app, clock, smtp, subject="Transport letter")["sam@example.org"]
    deliver(bounce_port, dsn("microsoft_permanent.eml", verp, "sam@example.org"), verp)
    deliver(bounce_port, b"From: someone@example.net\r\nSubject: Hello there\r\n\r\nHi.\r\n", BOUNCES)
    process_bounces_for_app(bounce_app)
    admin = logged_in_admin(bounce_app, clock)
    response = admin.get("/admin/bounces")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "RESOLVER.ADR.RecipientNotFound" in page and "Transport letter" in page
    near = page.split('id="bounces-near"')[1].split("</table>")[0]
    assert "sam@example.org" in near and "1 of 3" in near
    unmatched = page.split('id="bounces-unmatched"')[1].split("</table>")[0]
    assert "Hello there" in unmatched and "no VERP token" in unmatched
    assert 'href="/admin/bounces"' in page


# --- the IMAP path: Dovecot on loopback ------------------------------------------------------


@pytest.fixture
def dovecot():  # type: ignore[no-untyped-def]
    from conftest import skip_or_fail

    from support.dovecot import Dovecot, available

    if not available():
        skip_or_fail("dovecot is not installed (Debian dovecot-imapd)")
    server = Dovecot().start()
    try:
        yield server
    finally:
        server.stop()


def imap_app(make_app, dovecot, **extra):  # type: ignore[no-untyped-def]
    return make_app(
        MAILER_BOUNCE_ADDRESS=BOUNCES, MAILER_BOUNCE_IMAP_HOST=dovecot.host, MAILER_BOUNCE_IMAP_PORT=dovecot.port,
        MAILER_BOUNCE_IMAP_SSL=False, MAILER_BOUNCE_IMAP_USERNAME=dovecot.username,
        MAILER_BOUNCE_IMAP_PASSWORD=dovecot.password, **extra,
    )


def imap_client(dovecot):  # type: ignore[no-untyped-def]
    from imapclient import IMAPClient

    client = IMAPClient(dovecot.host, port=dovecot.port, ssl=False, timeout=10)
    client.login(dovecot.username, dovecot.password)
    return client


def into_mailbox(dovecot, raw: bytes, delivered_to: str | None = None) -> None:  # type: ignore[no-untyped-def]
    """As the local delivery agent would file it: with Delivered-To naming the envelope recipient."""
    client = imap_client(dovecot)
    try:
        client.append("INBOX", (f"Delivered-To: {delivered_to}\r\n".encode() if delivered_to else b"") + raw)
    finally:
        client.logout()


def mailbox_uids(dovecot, criteria=("UNDELETED",)):  # type: ignore[no-untyped-def]
    client = imap_client(dovecot)
    try:
        client.select_folder("INBOX")
        return client.search(list(criteria))
    finally:
        client.logout()


def test_imap_bounce_mailbox_is_read_counted_and_emptied(make_app, dovecot, clock, smtp):
    """DSNs filed in the bounce mailbox are stored, counted once (even if one comes back twice) and removed."""
    app = imap_app(make_app, dovecot)
    with app.app_context():
        sam = add_member("sam@example.org", clock=clock)
        alex = add_member("alex@example.org", clock=clock)
    senders = send_announcement(app, clock, smtp)
    into_mailbox(dovecot, dsn("gmail_permanent.eml", senders["sam@example.org"], "sam@example.org"),
                 senders["sam@example.org"])
    into_mailbox(dovecot, dsn("exim_permanent.eml", senders["alex@example.org"], "alex@example.org"))
    summary = process_bounces_for_app(app)
    assert summary.counted == 2 and summary.errors == 0
    assert mailbox_uids(dovecot, ["ALL"]) == [], "deleted and expunged after the commit"
    assert member_row(app, sam).bounce_count == 1 and member_row(app, alex).bounce_count == 1
    with app.app_context():
        assert {m.source for m in db.session.scalars(select(BounceMessage))} == {"imap"}
    # As if a crash had come between the commit and the delete: the same message is read again.
    into_mailbox(dovecot, dsn("gmail_permanent.eml", senders["sam@example.org"], "sam@example.org"),
                 senders["sam@example.org"])
    assert process_bounces_for_app(app).processed == 1
    assert member_row(app, sam).bounce_count == 1


def test_imap_oversized_message_is_left_and_skipped(make_app, dovecot, clock, smtp):
    """A message over the size limit is not stored, stays in the mailbox for a person, and is not fetched again."""
    app = imap_app(make_app, dovecot, MAILER_BOUNCE_MAX_BYTES=20_000)
    into_mailbox(dovecot, b"Subject: huge\r\n\r\n" + (b"y" * 500 + b"\r\n") * 100)
    assert process_bounces_for_app(app).processed == 0
    assert process_bounces_for_app(app).processed == 0
    assert len(mailbox_uids(dovecot)) == 1
    assert len(mailbox_uids(dovecot, ["KEYWORD", "MailerTooLarge"])) == 1
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(BounceMessage)) == 0


def test_unreachable_imap_mailbox_does_not_stop_processing(make_app, bounce_port, clock, smtp, caplog):  # type: ignore[no-untyped-def]
    """A wrong IMAP password or a server that is down is logged; the bounce port's messages are still read."""
    app = make_app(MAILER_BOUNCE_ADDRESS=BOUNCES, MAILER_BOUNCE_IMAP_HOST="127.0.0.1",
                   MAILER_BOUNCE_IMAP_PORT=free_port(), MAILER_BOUNCE_IMAP_SSL=False)
    deliver(bounce_port, b"From: someone@example.net\r\nSubject: Hello\r\n\r\nHi.\r\n", BOUNCES)
    with caplog.at_level(logging.WARNING, logger="mailer.worker.runner"):
        summary = process_bounces_for_app(app)
    assert summary.errors == 0 and summary.processed == 1
    assert any("could not fetch" in r.getMessage() for r in caplog.records)


def test_erasure_and_retention_remove_the_raw_reports(bounce_app, bounce_port, clock, smtp):
    """Raw DSNs quote the address: erasing the member deletes them and their events; old ones are purged (C3)."""
    from mailer.bounces.records import purge_bounce_messages
    from mailer.members.rights import erase_member

    with bounce_app.app_context():
        sam = add_member("sam@example.org", clock=clock)
        add_member("alex@example.org", clock=clock)
    senders = send_announcement(bounce_app, clock, smtp)
    for address in ("sam@example.org", "alex@example.org"):
        deliver(bounce_port, dsn("rfc3464_permanent.eml", senders[address], address), senders[address])
    process_bounces_for_app(bounce_app)
    with bounce_app.app_context():
        key = settings_of(bounce_app).suppression_key
        erase_member(db.session, db.session.get(Member, sam), suppression_key=key, clock=clock)
        db.session.commit()
        raws = list(db.session.scalars(select(BounceMessage.raw)))
        assert len(raws) == 1 and b"sam@example.org" not in raws[0]
        assert db.session.scalar(select(func.count()).select_from(BounceEvent)) == 1
        assert purge_bounce_messages(db.session, older_than=clock.now() - timedelta(days=60)) == 0
        assert purge_bounce_messages(db.session, older_than=clock.now() + timedelta(seconds=1)) == 1
        db.session.commit()
        assert db.session.scalar(select(func.count()).select_from(BounceEvent)) == 1, "the count outlives the raw text"


def test_bounce_server_and_worker_processes_end_to_end(make_app, database_uri, clock, smtp, tmp_path):
    """Production wiring: `flask bounce-server` stores a DSN, `flask worker` sends with VERP and counts it."""
    import os
    import subprocess
    import sys
    import time
    from datetime import UTC, datetime

    from support.processes import ROOT, WorkerProcess

    app = make_app(MAILER_BOUNCE_ADDRESS=BOUNCES)
    clock.set(datetime.now(UTC))  # the processes use the real clock
    with app.app_context():
        sam = add_member("sam@example.org", clock=clock)
    due_announcement(app, clock)
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "FLASK_SQLALCHEMY_DATABASE_URI": database_uri,
           "FLASK_SECRET_KEY": "test-only-secret", "FLASK_MAILER_BOUNCE_SMTP_PORT": str(port),
           "FLASK_MAILER_BOUNCE_ADDRESS": BOUNCES}
    env.pop("MAILER_ENV", None)
    log_path = tmp_path / "bounce-server.log"
    with open(log_path, "ab") as log_file:
        server = subprocess.Popen([sys.executable, "-m", "flask", "--app", "wsgi", "bounce-server"], cwd=ROOT, env=env,
                                  stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
    worker = WorkerProcess(database_uri, smtp, tmp_path / "worker.log", MAILER_BOUNCE_ADDRESS=BOUNCES)
    try:
        verp = smtp.wait_for(1, timeout=30)[0].mail_from
        assert verp.startswith("bounces+d")
        deadline = time.monotonic() + 20
        while True:
            try:
                deliver(port, dsn("postfix_permanent.eml", verp, "sam@example.org"), verp)
                break
            except OSError:
                assert time.monotonic() < deadline and server.poll() is None, log_path.read_text()[-2000:]
                time.sleep(0.1)
        deadline = time.monotonic() + 30
        while member_row(app, sam).bounce_count == 0:
            assert time.monotonic() < deadline, worker.log()[-3000:]
            time.sleep(0.1)
    finally:
        assert worker.stop() == 0, worker.log()[-2000:]
        server.terminate()
        assert server.wait(timeout=15) == 0, log_path.read_text()[-2000:]
    with app.app_context():
        assert db.session.scalars(select(BounceMessage)).one().outcome is BounceOutcome.MATCHED


# --- the port under attack (issue 15) ---------------------------------------------------


def stored_count(app) -> int:  # type: ignore[no-untyped-def]
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(BounceMessage))


@pytest.mark.parametrize("rcpt", [
    "someone@example.org", "parent@forum.test", "bounces@elsewhere.example", "bounces+d1@forum.test",
    "bounces+d1-0000000000000000@forum.test", "other+d1-0000000000000000@forum.test",
])
def test_the_port_refuses_recipients_that_are_not_ours_at_rcpt(bounce_app, bounce_port, rcpt):
    """Only the bounce address and VERP addresses with our signature are taken: anything else is 550 at
    RCPT (over real SMTP), and nothing is stored."""
    with smtplib.SMTP("127.0.0.1", bounce_port, timeout=30) as client:
        client.ehlo()
        assert client.mail("<>")[0] == 250
        code, _ = client.rcpt(rcpt)
        assert code == 550
    assert stored_count(bounce_app) == 0


def test_the_port_takes_the_bounce_address_and_signed_verp_addresses(bounce_app, bounce_port, clock, smtp):
    """The bounce address (any letter case) and a real VERP address from a send are still taken and stored."""
    with bounce_app.app_context():
        add_member("sam@example.org", clock=clock)
    verp = send_announcement(bounce_app, clock, smtp)["sam@example.org"]
    deliver(bounce_port, dsn("postfix_permanent.eml", verp, "sam@example.org"), verp.upper())
    deliver(bounce_port, b"From: postmaster@example.net\r\nSubject: Hello\r\n\r\nHi.\r\n", "Bounces@Forum.Test")
    assert stored_count(bounce_app) == 2
    assert process_bounces_for_app(bounce_app).counted == 1


def test_a_message_over_the_256_kb_default_is_refused_and_nothing_stored(bounce_app, bounce_port):
    """A DSN is a few kilobytes: 300 KB to the bounce address is 552 after DATA, and nothing is kept."""
    assert bounce_app.config["MAILER_BOUNCE_MAX_BYTES"] == 256 * 1024
    big = b"Subject: big\r\n\r\n" + (b"x" * 998 + b"\r\n") * 300
    with smtplib.SMTP("127.0.0.1", bounce_port, timeout=60) as client:
        client.ehlo()
        assert client.mail("<>")[0] == 250
        assert client.rcpt(BOUNCES)[0] == 250
        code, _ = client.data(big)
        assert code == 552
    assert stored_count(bounce_app) == 0


def test_a_flood_from_one_client_is_slowed_down(make_app):
    """Past the per-client limit a minute, MAIL gets 450 (a real relay tries again later); what came before
    the limit was stored."""
    app = make_app(MAILER_BOUNCE_ADDRESS=BOUNCES, MAILER_BOUNCE_MESSAGES_PER_MINUTE=3)
    controller = bounce_controller(app, host="127.0.0.1", port=free_port())
    controller.start()
    try:
        codes = []
        with smtplib.SMTP("127.0.0.1", controller.port, timeout=30) as client:
            client.ehlo()
            for i in range(5):
                code, _ = client.mail("<>")
                codes.append(code)
                if code == 250:
                    assert client.rcpt(BOUNCES)[0] == 250
                    assert client.data(f"Subject: {i}\r\n\r\nbounce {i}\r\n".encode())[0] == 250
        assert codes == [250, 250, 250, 450, 450]
        assert stored_count(app) == 3
    finally:
        controller.stop()


def test_the_port_stops_taking_mail_while_too_many_wait_for_the_worker(make_app):
    """With the unprocessed cap reached the port answers 452 (try later) and stores nothing more; once the
    worker has read them, mail is taken again."""
    app = make_app(MAILER_BOUNCE_ADDRESS=BOUNCES, MAILER_BOUNCE_MAX_UNPROCESSED=2)
    controller = bounce_controller(app, host="127.0.0.1", port=free_port())
    controller.start()
    try:
        for i in range(2):
            deliver(controller.port, f"Subject: {i}\r\n\r\nbounce {i}\r\n".encode(), BOUNCES)
        with smtplib.SMTP("127.0.0.1", controller.port, timeout=30) as client:
            client.ehlo()
            assert client.mail("<>")[0] == 452
        assert stored_count(app) == 2
        process_bounces_for_app(app)
        deliver(controller.port, b"Subject: later\r\n\r\nbounce later\r\n", BOUNCES)
        assert stored_count(app) == 3
    finally:
        controller.stop()


def test_another_client_is_not_slowed_down_by_one_that_floods(make_app):
    """The limit counts per client address: past it, 127.0.0.1 gets 450 while 127.0.0.2 is still taken."""
    app = make_app(MAILER_BOUNCE_ADDRESS=BOUNCES, MAILER_BOUNCE_MESSAGES_PER_MINUTE=2)
    controller = bounce_controller(app, host="127.0.0.1", port=free_port())
    controller.start()
    try:
        for i in range(2):
            deliver(controller.port, f"Subject: {i}\r\n\r\nbounce {i}\r\n".encode(), BOUNCES)
        with smtplib.SMTP("127.0.0.1", controller.port, timeout=30) as flooder:
            flooder.ehlo()
            assert flooder.mail("<>")[0] == 450
        with smtplib.SMTP("127.0.0.1", controller.port, timeout=30, source_address=("127.0.0.2", 0)) as other:
            other.sendmail("<>", [BOUNCES], b"Subject: other\r\n\r\nbounce from another relay\r\n")
        assert stored_count(app) == 3
    finally:
        controller.stop()


def test_the_cap_holds_when_many_clients_reach_data_together(make_app):
    """Clients that all passed MAIL while the store was empty are each checked again at DATA: with a cap of
    2, four messages in flight store two and the others get 452 (try later), never more than the cap."""
    app = make_app(MAILER_BOUNCE_ADDRESS=BOUNCES, MAILER_BOUNCE_MAX_UNPROCESSED=2)
    controller = bounce_controller(app, host="127.0.0.1", port=free_port())
    controller.start()
    clients = [smtplib.SMTP("127.0.0.1", controller.port, timeout=30) for _ in range(4)]
    try:
        for client in clients:
            client.ehlo()
            assert client.mail("<>")[0] == 250
            assert client.rcpt(BOUNCES)[0] == 250
        codes = [client.data(f"Subject: {i}\r\n\r\nbounce {i}\r\n".encode())[0] for i, client in enumerate(clients)]
        assert codes == [250, 250, 452, 452]
        assert stored_count(app) == 2
    finally:
        for client in clients:
            client.close()
        controller.stop()


def test_the_port_stops_taking_mail_past_the_unprocessed_bytes_cap(make_app):
    """The waiting messages' total size is capped too: a message that would take the backlog past
    MAILER_BOUNCE_MAX_UNPROCESSED_BYTES gets 452 and is not stored; once the worker has read them, it is taken."""
    app = make_app(MAILER_BOUNCE_ADDRESS=BOUNCES, MAILER_BOUNCE_MAX_UNPROCESSED_BYTES=5000)
    controller = bounce_controller(app, host="127.0.0.1", port=free_port())
    controller.start()
    message = b"Subject: bounce\r\n\r\n" + (b"x" * 998 + b"\r\n") * 3
    try:
        deliver(controller.port, message, BOUNCES)
        with pytest.raises(smtplib.SMTPDataError) as refused:
            deliver(controller.port, message, BOUNCES)
        assert refused.value.smtp_code == 452
        assert stored_count(app) == 1
        process_bounces_for_app(app)
        deliver(controller.port, message, BOUNCES)
        assert stored_count(app) == 2
    finally:
        controller.stop()


def test_one_message_cannot_name_the_bounce_address_without_end(bounce_app, bounce_port):
    """A bounce has one recipient; past 50 in one message RCPT gets 452 (too many recipients), and the
    message is stored once with the 50 taken."""
    with smtplib.SMTP("127.0.0.1", bounce_port, timeout=30) as client:
        client.ehlo()
        assert client.mail("<>")[0] == 250
        codes = [client.rcpt(BOUNCES)[0] for _ in range(52)]
        assert codes == [250] * 50 + [452, 452]
        assert client.data(b"Subject: many\r\n\r\nbounce\r\n")[0] == 250
    assert stored_count(bounce_app) == 1
