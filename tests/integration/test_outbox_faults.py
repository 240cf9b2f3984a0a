"""S6 outbox faults, for real: the SMTP sink is stopped, answers 451 or 550, and members vanish mid-queue.

Every fault comes from a real server on loopback; the web request must never wait on it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select

from mailer.extensions import db
from mailer.mail.tokens import Purpose, make_token
from mailer.models import MailKind, Member, MemberStatus, OutboxMessage, OutboxState
from mailer.worker.runner import process_join_requests_for_app, run_tick_for_app
from support.factories import link_key_of
from support.web import csrf_token, join


@dataclass(frozen=True)
class Row:
    id: int
    kind: MailKind
    member_id: int | None
    state: OutboxState
    attempts: int
    last_error: str | None
    next_attempt_at: datetime


def outbox_rows(app: Any) -> list[Row]:
    """The outbox as plain values, oldest first."""
    with app.app_context():
        return [
            Row(r.id, r.kind, r.member_id, r.state, r.attempts, r.last_error, r.next_attempt_at)
            for r in db.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id))
        ]


def only_row(app: Any) -> Row:
    rows = outbox_rows(app)
    assert len(rows) == 1, rows
    return rows[0]


def member_id_of(app: Any, email: str) -> int:
    with app.app_context():
        return db.session.scalar(select(Member.id).where(Member.email_key == email.lower()))


def test_stopped_server_keeps_mail_pending_without_an_attempt_then_sends_on_restart(app, client, smtp):
    """S6: with SMTP down the join still answers 303, the tick counts no attempt, and the restart's first tick sends."""
    smtp.stop()
    response = join(client, email="down@example.org")
    assert response.status_code == 303
    process_join_requests_for_app(app)
    assert only_row(app).state is OutboxState.PENDING

    summary = run_tick_for_app(app)
    assert summary.server_unavailable
    assert summary.outbox.sent == 0 and summary.outbox.retrying == 0 and summary.outbox.failed == 0
    assert "(mail server unavailable" in summary.describe()
    row = only_row(app)
    assert row.state is OutboxState.PENDING
    assert row.attempts == 0  # the server's fault, not the message's: no attempt used up

    smtp.start()
    summary = run_tick_for_app(app)
    assert summary.outbox.sent == 1
    assert not summary.server_unavailable
    (received,) = smtp.wait_for(1)
    assert received.rcpt_tos == ["down@example.org"]
    row = only_row(app)
    assert row.state is OutboxState.SENT
    assert row.attempts == 1


def test_451_is_retried_after_the_backoff_and_sent_once(app, client, smtp, clock):
    """S4/S6: a 4xx leaves the row pending with one attempt and a future retry time; it goes out after the backoff."""
    smtp.reply_to_rcpt("later@example.org", "451 4.3.0 try later")
    join(client, email="later@example.org")

    summary = run_tick_for_app(app)
    assert summary.outbox.retrying == 1 and summary.outbox.sent == 0
    row = only_row(app)
    assert row.state is OutboxState.PENDING
    assert row.attempts == 1
    assert "451" in (row.last_error or "")
    assert row.next_attempt_at > clock.now()
    assert smtp.received == []

    # Not due yet: a tick right away leaves it alone.
    assert run_tick_for_app(app).outbox.sent == 0
    assert smtp.received == []
    assert only_row(app).attempts == 1

    clock.advance(seconds=(row.next_attempt_at - clock.now()).total_seconds() + 1)
    assert run_tick_for_app(app).outbox.sent == 1
    (received,) = smtp.wait_for(1)
    assert received.rcpt_tos == ["later@example.org"]
    row = only_row(app)
    assert row.state is OutboxState.SENT
    assert row.attempts == 2
    assert row.last_error is None
    assert len(smtp.received) == 1


def test_550_fails_the_row_and_is_never_retried(app, client, smtp, clock):
    """S4: a permanent refusal fails the row with the server's words and later ticks leave it alone."""
    smtp.reply_to_rcpt("nobody@example.org", "550 5.1.1 no such user", "550 5.1.1 no such user")
    join(client, email="nobody@example.org")

    summary = run_tick_for_app(app)
    assert summary.outbox.failed == 1 and summary.outbox.sent == 0 and summary.outbox.retrying == 0
    row = only_row(app)
    assert row.state is OutboxState.FAILED
    assert row.attempts == 1
    assert "550" in (row.last_error or "") and "no such user" in (row.last_error or "")

    for _ in range(3):
        clock.advance(days=1)
        summary = run_tick_for_app(app)
        assert summary.outbox.sent == summary.outbox.failed == summary.outbox.retrying == 0
    assert only_row(app) == row
    assert smtp.received == []


def test_retries_give_up_after_max_attempts(make_app, smtp, clock):
    """S4: MAILER_OUTBOX_MAX_ATTEMPTS transient failures in a row fail the row; nothing is tried after that."""
    app = make_app(MAILER_OUTBOX_MAX_ATTEMPTS=3)
    client = app.test_client()
    smtp.reply_to_rcpt("flaky@example.org", *["451 4.3.0 try later"] * 5)
    join(client, email="flaky@example.org")

    states = []
    for _ in range(3):
        run_tick_for_app(app)
        row = only_row(app)
        states.append((row.state, row.attempts))
        clock.advance(seconds=float(app.config["MAILER_RETRY_MAX_SECONDS"]) + 1)
    assert states == [(OutboxState.PENDING, 1), (OutboxState.PENDING, 2), (OutboxState.FAILED, 3)]
    assert "451" in (only_row(app).last_error or "")

    clock.advance(days=2)
    summary = run_tick_for_app(app)
    assert summary.outbox.sent == summary.outbox.retrying == summary.outbox.failed == 0
    assert only_row(app).attempts == 3
    assert smtp.received == []


def test_one_refused_recipient_does_not_stop_the_others(app, client, smtp):
    """S2/S4: a 550 for the middle recipient resets the transaction; the first and last still arrive."""
    smtp.reply_to_rcpt("middle@example.org", "550 5.1.1 no such user")
    for address in ("first@example.org", "middle@example.org", "last@example.org"):
        assert join(client, email=address).status_code == 303

    summary = run_tick_for_app(app)
    assert summary.outbox.sent == 2 and summary.outbox.failed == 1
    received = smtp.wait_for(2)
    assert sorted(r.rcpt_tos[0] for r in received) == ["first@example.org", "last@example.org"]
    assert [r.state for r in outbox_rows(app)] == [OutboxState.SENT, OutboxState.FAILED, OutboxState.SENT]


def test_erased_members_queued_confirmation_is_dropped(app, client, smtp):
    """S5/C3: a member erased before the tick gets nothing; the row is marked dropped, not sent or retried."""
    join(client, email="erased@example.org")
    join(client, email="kept@example.org")
    process_join_requests_for_app(app)
    erased_id = member_id_of(app, "erased@example.org")
    with app.app_context():
        db.session.execute(delete(Member).where(Member.id == erased_id))
        db.session.commit()

    summary = run_tick_for_app(app)
    assert summary.outbox.dropped == 1 and summary.outbox.sent == 1
    (received,) = smtp.wait_for(1)
    assert received.rcpt_tos == ["kept@example.org"]
    dropped, sent = outbox_rows(app)
    assert dropped.state is OutboxState.DROPPED and dropped.member_id is None
    assert dropped.attempts == 0
    assert sent.state is OutboxState.SENT
    run_tick_for_app(app)
    assert len(smtp.received) == 1


def test_web_requests_never_open_smtp(app, client, smtp, clock):
    """S6: with the mail server down, joining and confirming both succeed; their mail waits in the outbox."""
    smtp.stop()
    assert join(client, email="offline@example.org").status_code == 303
    process_join_requests_for_app(app)  # the worker's part, which needs no mail server
    member_id = member_id_of(app, "offline@example.org")
    token = make_token(app.config["SECRET_KEY"], Purpose.CONFIRM, link_key_of(app, member_id), 1, clock=clock)

    page = client.get(f"/confirm/{token}")
    assert page.status_code == 200
    confirmed = client.post(f"/confirm/{token}", data={"csrf_token": csrf_token(page.get_data(as_text=True))})
    assert confirmed.status_code == 200
    assert "You are subscribed" in confirmed.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(Member, member_id).status is MemberStatus.MEMBER
    rows = outbox_rows(app)
    assert [(r.kind, r.state, r.attempts) for r in rows] == [
        (MailKind.CONFIRM, OutboxState.PENDING, 0),
        (MailKind.WELCOME, OutboxState.PENDING, 0),
    ]

    # Once the server is back, one tick sends the welcome; the confirmation request is
    # no longer wanted (they confirmed meanwhile), so it is dropped rather than sent.
    smtp.start()
    summary = run_tick_for_app(app)
    assert (summary.outbox.sent, summary.outbox.dropped) == (1, 1)
    (welcome,) = smtp.wait_for(1)
    assert welcome.rcpt_tos == ["offline@example.org"]
    assert welcome.message["Subject"] == "Welcome to Test Parent Carer Forum"
    assert [r.state for r in outbox_rows(app)] == [OutboxState.DROPPED, OutboxState.SENT]
