"""The sending engine under faults, with real processes and a real SMTP server (S2-S5, S7)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

from conftest import base_config
from sqlalchemy import func, select

from mailer import create_app
from mailer.clock import FrozenClock
from mailer.engine.rate_limit import RateLimiter
from mailer.extensions import db
from mailer.models import (
    Announcement,
    AnnouncementState,
    ConsentAction,
    ConsentEvent,
    Delivery,
    DeliveryState,
    Member,
    MemberStatus,
)
from mailer.worker.runner import run_tick_for_app
from support.factories import add_member, add_members, due_announcement
from support.processes import WorkerProcess
from support.web import join


def delivery_states(app) -> Counter:  # type: ignore[no-untyped-def]
    with app.app_context():
        return Counter(dict(db.session.execute(select(Delivery.state, func.count()).group_by(Delivery.state)).all()))


def wait_until(condition, timeout: float = 60.0, what: str = "condition") -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_killed_worker_loses_nothing(app, database_uri, clock, smtp, tmp_path):
    """Kill -9 a worker mid-send to 2000 members; a new one finishes: everyone gets it, duplicates <= in flight."""
    members = 2000
    add_members(app, clock, members)
    clock.set(datetime.now(UTC))  # the worker processes use the real clock
    announcement_id = due_announcement(app, clock, subject="Crash test")
    first = WorkerProcess(database_uri, smtp, tmp_path / "first.log", MAILER_BATCH_SIZE=100)
    try:
        smtp.wait_for(300, timeout=60)
        first.kill()
    finally:
        first.stop()
    at_kill = len(smtp.received)
    assert at_kill < members, "the first worker finished before it could be killed"
    second = WorkerProcess(database_uri, smtp, tmp_path / "second.log", MAILER_BATCH_SIZE=100,
                           MAILER_CLAIM_LEASE_SECONDS=1)
    try:
        wait_until(lambda: len({r.rcpt_tos[0] for r in smtp.received}) == members, 120, "every member")
        wait_until(lambda: delivery_states(app) == Counter({DeliveryState.SENT: members}), 30, "all rows sent")
    finally:
        assert second.stop() == 0, second.log()[-2000:]
    duplicates = len(smtp.received) - members
    assert 0 <= duplicates <= 100, f"{duplicates} duplicates, more than one claimed batch"
    with app.app_context():
        assert db.session.get(Announcement, announcement_id).state is AnnouncementState.SENT


def test_smtp_server_stopped_mid_send_then_back(make_app, clock, smtp):
    """The mail server goes away during a send and comes back: the send completes and nothing is lost."""
    app = make_app(MAILER_BATCH_SIZE=20)
    add_members(app, clock, 120)
    due_announcement(app, clock)
    smtp.slow_down(0.005)
    tick = threading.Thread(target=run_tick_for_app, args=(app,))
    tick.start()
    smtp.wait_for(30)
    smtp.stop()
    tick.join(timeout=60)
    arrived = len(smtp.received)
    assert arrived < 120
    summary = run_tick_for_app(app)  # server still down: nothing lost, nothing counted as failed
    assert summary.deliveries.server_unavailable and summary.deliveries.failed == 0
    smtp.start()
    smtp.slow_down(0)
    clock.advance(hours=2)  # past any retry backoff of the message that was cut off
    run_tick_for_app(app)
    recipients = Counter(r.rcpt_tos[0] for r in smtp.received)
    assert len(recipients) == 120
    assert delivery_states(app) == Counter({DeliveryState.SENT: 120})


def test_confirmation_email_does_not_wait_behind_a_long_send(make_app, clock, smtp):
    """A parent joins while a slowed 300-member send runs: their confirmation email goes out between
    delivery batches within about a second (the engine looks at the outbox at least once a second during
    a send), not after the last member's copy."""
    app = make_app(MAILER_BATCH_SIZE=20)
    add_members(app, clock, 300)
    due_announcement(app, clock, subject="Long send")
    smtp.slow_down(0.01)  # 300 messages: over three seconds
    tick = threading.Thread(target=run_tick_for_app, args=(app,))
    tick.start()
    smtp.wait_for(20, timeout=20)
    response = join(app.test_client(), email="new.parent@example.org")
    assert response.status_code in (302, 303), response.status_code
    joined_at = len(smtp.received)
    joined = time.monotonic()
    smtp.wait_for(joined_at + 1)
    while not smtp.to("new.parent@example.org") and time.monotonic() - joined < 10:
        time.sleep(0.01)
    confirmation_after = time.monotonic() - joined
    tick.join(timeout=60)
    assert not tick.is_alive()
    received = [r.rcpt_tos[0] for r in smtp.received]
    position = received.index("new.parent@example.org")
    assert len(received) == 301
    assert confirmation_after < 2.0, f"the confirmation waited {confirmation_after:.1f}s"
    assert position < len(received) - 50, f"it went out as message {position} of {len(received)}"


def test_server_that_drops_the_connection_every_few_messages(make_app, clock, smtp):
    """A relay that hangs up every 7th message: the engine reconnects and everyone gets exactly one copy."""
    app = make_app()
    add_members(app, clock, 50)
    due_announcement(app, clock)
    smtp.drop_connection_every(7)
    for _ in range(5):
        run_tick_for_app(app)
        clock.advance(hours=1)
    assert smtp.dropped >= 5
    recipients = Counter(r.rcpt_tos[0] for r in smtp.received)
    assert len(recipients) == 50 and set(recipients.values()) == {1}
    assert delivery_states(app) == Counter({DeliveryState.SENT: 50})


def test_451_then_250_is_retried_with_backoff(make_app, clock, smtp):
    """4xx for some recipients: retried later with backoff, delivered once the server accepts; others go at once."""
    app = make_app(MAILER_RETRY_BASE_SECONDS=60)
    add_members(app, clock, 5)
    due_announcement(app, clock)
    smtp.reply_to_rcpt("member00001@example.org", "451 4.7.1 greylisted, try again", "451 4.7.1 still greylisted")
    first = run_tick_for_app(app)
    assert (first.deliveries.sent, first.deliveries.retrying) == (4, 1)
    with app.app_context():
        row = db.session.scalars(select(Delivery).where(Delivery.state == DeliveryState.PENDING)).one()
        assert row.attempts == 1 and "451" in row.last_error
        assert timedelta(seconds=30) <= row.next_attempt_at - clock.now() <= timedelta(seconds=60)
    assert run_tick_for_app(app).deliveries.sent == 0  # not yet due
    clock.advance(seconds=61)
    assert run_tick_for_app(app).deliveries.retrying == 1  # second 451: backoff doubles
    clock.advance(seconds=121)
    assert run_tick_for_app(app).deliveries.sent == 1
    assert Counter(r.rcpt_tos[0] for r in smtp.received)["member00001@example.org"] == 1
    assert delivery_states(app) == Counter({DeliveryState.SENT: 5})


def test_550_fails_counts_a_bounce_and_suppresses_at_the_threshold(make_app, clock, smtp):
    """5xx: that delivery fails at once, the bounce counts, the member is suppressed at the threshold; the rest go."""
    app = make_app(MAILER_BOUNCE_THRESHOLD=2)
    with app.app_context():
        bad = add_member("bad@example.org", clock=clock)
        add_member("good@example.org", clock=clock)
    for round_number in range(2):
        smtp.reply_to_rcpt("bad@example.org", "550 5.1.1 no such user")
        due_announcement(app, clock, subject=f"Round {round_number}")
        summary = run_tick_for_app(app)
        assert (summary.deliveries.sent, summary.deliveries.failed) == (1, 1)
    with app.app_context():
        member = db.session.get(Member, bad)
        assert member.bounce_count == 2 and member.status is MemberStatus.UNSUBSCRIBED
        event = db.session.scalars(select(ConsentEvent).where(ConsentEvent.action == ConsentAction.SUPPRESSED)).one()
        assert event.member_id == bad and "2 permanent" in event.detail["reason"]
    due_announcement(app, clock, subject="After suppression")
    run_tick_for_app(app)
    assert [r.rcpt_tos[0] for r in smtp.received] == ["good@example.org"] * 3


def test_three_postgres_workers_share_a_send_exactly_once(clock, smtp, tmp_path, postgres_uri):
    """Three worker processes on PostgreSQL share a 5000-member send: each message arrives once, work is spread."""
    database_uri = postgres_uri
    app = create_app(base_config(postgres_uri, smtp))
    app.extensions["mailer.clock"] = clock
    members = 5000
    add_members(app, clock, members)
    clock.set(datetime.now(UTC))
    due_announcement(app, clock, subject="Shared")
    workers = [
        WorkerProcess(database_uri, smtp, tmp_path / f"w{i}.log", MAILER_WORKER_ID=f"worker-{i}", MAILER_BATCH_SIZE=50)
        for i in range(3)
    ]
    try:
        wait_until(lambda: len(smtp.received) >= members, 180, "5000 messages")
        wait_until(lambda: delivery_states(app) == Counter({DeliveryState.SENT: members}), 60, "all rows sent")
    finally:
        codes = [w.stop() for w in workers]
    assert codes == [0, 0, 0]
    recipients = Counter(r.rcpt_tos[0] for r in smtp.received)
    assert len(recipients) == members and set(recipients.values()) == {1}
    with app.app_context():
        by_worker = Counter(
            claimed.split(":")[0] for claimed in db.session.scalars(select(Delivery.claimed_by))
        )
    assert len(by_worker) >= 2, by_worker


def test_second_worker_on_sqlite_waits_with_a_clear_log_line(sqlite_uri, smtp, tmp_path):
    """SQLite supports one worker: a second one says so and waits until the first stops."""
    first = WorkerProcess(sqlite_uri, smtp, tmp_path / "first.log")
    second = None
    try:
        first.wait_for_log("worker: started")
        second = WorkerProcess(sqlite_uri, smtp, tmp_path / "second.log")
        second.wait_for_log("another worker")
        assert "worker: started" not in second.log()
        assert first.stop() == 0
        second.wait_for_log("worker: started")
    finally:
        first.stop()
        if second is not None:
            assert second.stop() == 0


def test_rate_limit_holds_in_every_60_second_window():
    """No 60-second window ever has more sends than the limit, with an injected clock and sleep."""
    clock = FrozenClock()
    sent: list[datetime] = []
    limiter = RateLimiter(100, clock, lambda seconds: clock.advance(seconds=seconds))
    for i in range(350):
        limiter.wait()
        sent.append(clock.now())
        clock.advance(seconds=0.05 if i % 3 else 0.4)
    for start in sent:
        in_window = [t for t in sent if start <= t < start + timedelta(seconds=60)]
        assert len(in_window) <= 100
    assert sent[-1] - sent[0] >= timedelta(minutes=3)  # 350 sends at 100/min need over three minutes
    assert sent[-1] - sent[0] < timedelta(minutes=3, seconds=30)  # and not much more: it does not over-wait


def test_rate_limit_applies_across_ticks(make_app, clock, smtp):
    """The worker's limit spans ticks: 25 messages at 10 a minute take at least two virtual minutes."""
    app = make_app(MAILER_RATE_LIMIT_PER_MINUTE=10)
    app.extensions["mailer.sleep"] = lambda seconds: clock.advance(seconds=seconds)
    add_members(app, clock, 25)
    due_announcement(app, clock)
    start = clock.now()
    run_tick_for_app(app)
    assert len(smtp.wait_for(25)) == 25
    assert timedelta(minutes=2) <= clock.now() - start < timedelta(minutes=2, seconds=10)
    run_tick_for_app(app)  # the next tick reuses the same limiter: its window carries over
    assert app.extensions["mailer.rate_limiter"].per_minute == 10


def test_smtp_concurrency_runs_several_sending_processes_on_postgresql(clock, smtp, tmp_path, postgres_uri):
    """MAILER_SMTP_CONCURRENCY=2 on PostgreSQL: two sending processes share a send; SIGTERM stops both."""
    app = create_app(base_config(postgres_uri, smtp))
    app.extensions["mailer.clock"] = clock
    add_members(app, clock, 300)
    clock.set(datetime.now(UTC))
    worker = WorkerProcess(postgres_uri, smtp, tmp_path / "worker.log", MAILER_WORKER_ID="pair",
                           MAILER_SMTP_CONCURRENCY=2, MAILER_BATCH_SIZE=10)
    try:
        worker.wait_for_log("started 1 more sending process")
        wait_until(lambda: worker.log().count("worker: started, tick") >= 2, 30, "both sending processes")
        smtp.slow_down(0.005)  # long enough for both to take batches
        due_announcement(app, clock, subject="Two connections")
        wait_until(lambda: delivery_states(app) == Counter({DeliveryState.SENT: 300}), 120, "all rows sent")
    finally:
        assert worker.stop() == 0, worker.log()[-2000:]
    recipients = Counter(r.rcpt_tos[0] for r in smtp.received)
    assert len(recipients) == 300 and set(recipients.values()) == {1}
    with app.app_context():
        senders = {claimed.split(":")[0] for claimed in db.session.scalars(select(Delivery.claimed_by))}
        db.session.remove()
        db.engine.dispose()
    assert senders == {"pair", "pair/2"}, senders


def test_an_address_no_server_can_take_fails_alone_and_the_rest_are_sent(make_app, clock, smtp):
    """A member stored with an address that needs SMTPUTF8 (from before the join form refused them) fails with
    a reason, announcement and welcome alike; everyone else is sent to and nothing is left claimed."""
    from mailer.mail.outbox import enqueue_mail
    from mailer.models import MailKind, OutboxMessage, OutboxState

    app = make_app()
    with app.app_context():
        odd = add_member("zoë@example.org", clock=clock, name="Zoë")
        add_member("good@example.org", clock=clock)
        enqueue_mail(db.session, MailKind.WELCOME, clock=clock, member_id=odd)
        db.session.commit()
    due_announcement(app, clock, subject="Coffee morning")
    summary = run_tick_for_app(app)
    assert (summary.deliveries.sent, summary.deliveries.failed) == (1, 1)
    assert [r.rcpt_tos for r in smtp.received] == [["good@example.org"]]
    with app.app_context():
        failed = db.session.scalars(select(Delivery).where(Delivery.member_id == odd)).one()
        assert failed.state is DeliveryState.FAILED and "could not be written" in failed.last_error
        welcome = db.session.scalars(select(OutboxMessage)).one()
        assert welcome.state is OutboxState.FAILED and "could not be written" in welcome.last_error
    assert delivery_states(app)[DeliveryState.SENDING] == 0


def test_results_are_written_within_a_quarter_second_even_mid_batch(make_app, clock, smtp):
    """With a slow relay, rows accepted by the server are marked sent while the batch is still going,
    so a crash would re-send at most a quarter of a second's worth, not the whole batch (S3)."""
    app = make_app(MAILER_BATCH_SIZE=100)
    add_members(app, clock, 12)
    due_announcement(app, clock, subject="Slow relay")
    smtp.slow_down(0.1)
    seen_mid_batch: list[tuple[int, int]] = []
    tick = threading.Thread(target=run_tick_for_app, args=(app,))
    tick.start()
    try:
        while tick.is_alive():
            sent_rows = delivery_states(app)[DeliveryState.SENT]
            if 0 < sent_rows < 12:
                seen_mid_batch.append((sent_rows, len(smtp.received)))
            time.sleep(0.05)
    finally:
        tick.join(30)
    assert seen_mid_batch, "no row was marked sent until the whole batch had gone"
    assert all(rows <= arrived for rows, arrived in seen_mid_batch)  # never marked before the server took it
    assert delivery_states(app) == Counter({DeliveryState.SENT: 12})
