"""Claims of a stopped worker come back within a few ticks, a live worker's never (S3, S7, issue 17 section 5)."""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from mailer.clock import FrozenClock, SystemClock
from mailer.engine.announcement_sender import DeliveryQueue
from mailer.engine.outbox_sender import OutboxQueue
from mailer.engine.queue import release_expired_claims
from mailer.extensions import db
from mailer.models import Delivery, DeliveryState, MailKind, OutboxMessage, OutboxState, WorkerHeartbeat
from mailer.settings import settings_of
from mailer.transaction import transaction
from support.factories import add_members, due_announcement
from support.processes import WorkerProcess


def delivery_states(app: Any) -> Counter[DeliveryState]:
    with app.app_context():
        try:
            return Counter(
                dict(db.session.execute(select(Delivery.state, func.count()).group_by(Delivery.state)).all())
            )
        finally:
            db.session.remove()


def wait_until(condition: Any, timeout: float, what: str) -> float:
    """Poll until `condition()` holds; the seconds it took."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
    return time.monotonic() - started


def release_all(app: Any) -> int:
    """What the start of a tick hands back, run from the test process against the same database."""
    settings = settings_of(app).engine_settings
    with app.app_context():
        try:
            released = 0
            for kind in (OutboxQueue, DeliveryQueue):
                released += release_expired_claims(db.session, kind, settings=settings, clock=SystemClock())
            return released
        finally:
            db.session.remove()


def test_rows_of_a_killed_worker_go_out_within_a_few_ticks(app: Any, database_uri: str, clock: FrozenClock, smtp: Any,
                                                           tmp_path: Path) -> None:
    """kill -9 mid-send, lease 300 s: a new worker sends the killed one's claimed rows within seconds, once each."""
    members = 600
    add_members(app, clock, members)
    clock.set(datetime.now(UTC))  # the worker processes use the real clock
    due_announcement(app, clock, subject="Reclaim test")
    smtp.slow_down(0.01)  # a batch of 100 takes about a second: the kill lands inside one
    first = WorkerProcess(database_uri, smtp, tmp_path / "first.log", MAILER_BATCH_SIZE=100)
    try:
        smtp.wait_for(150, timeout=60)
        first.kill()
    finally:
        first.stop()
    at_kill = len(smtp.received)
    held = delivery_states(app)[DeliveryState.SENDING]
    assert at_kill < members and held > 0, (at_kill, held)
    smtp.slow_down(0)
    second = WorkerProcess(database_uri, smtp, tmp_path / "second.log", MAILER_BATCH_SIZE=100)
    try:
        took = wait_until(lambda: len({r.rcpt_tos[0] for r in smtp.received}) == members, 120, "every member")
        wait_until(lambda: delivery_states(app) == Counter({DeliveryState.SENT: members}), 30, "all rows sent")
    finally:
        assert second.stop() == 0, second.log()[-2000:]
    # Seconds (a worker's start-up on a busy machine, a 2 s heartbeat age), never the 300 s lease.
    assert took < 60, f"the killed worker's rows took {took:.1f}s"
    assert "claimed by a worker that stopped" in second.log()
    assert "longer ago than the lease" not in second.log()
    duplicates = len(smtp.received) - members
    assert 0 <= duplicates <= held, f"{duplicates} duplicates, more than the {held} rows in flight"
    ids_by_recipient: dict[str, set[str]] = {}
    for received in smtp.received:
        ids_by_recipient.setdefault(received.rcpt_tos[0], set()).add(message_from_bytes(received.raw)["Message-ID"])
    assert all(len(ids) == 1 for ids in ids_by_recipient.values()), "a resend got a new Message-ID (E8)"


def test_a_restarted_worker_with_the_same_id_takes_back_its_own_claims_at_once(
    app: Any, database_uri: str, clock: FrozenClock, smtp: Any, tmp_path: Path
) -> None:
    """A worker restarted under the same MAILER_WORKER_ID after kill -9 hands back its earlier run's claims at start."""
    members = 400
    add_members(app, clock, members)
    clock.set(datetime.now(UTC))
    due_announcement(app, clock, subject="Same id")
    smtp.slow_down(0.01)
    first = WorkerProcess(database_uri, smtp, tmp_path / "first.log", MAILER_BATCH_SIZE=100, MAILER_WORKER_ID="box")
    try:
        smtp.wait_for(150, timeout=60)
        first.kill()
    finally:
        first.stop()
    assert delivery_states(app)[DeliveryState.SENDING] > 0
    smtp.slow_down(0)
    second = WorkerProcess(database_uri, smtp, tmp_path / "second.log", MAILER_BATCH_SIZE=100, MAILER_WORKER_ID="box")
    try:
        took = wait_until(lambda: delivery_states(app) == Counter({DeliveryState.SENT: members}), 120, "all rows sent")
    finally:
        assert second.stop() == 0, second.log()[-2000:]
    assert took < 60, f"took {took:.1f}s"
    assert "claimed by a worker that stopped" in second.log()
    assert len({r.rcpt_tos[0] for r in smtp.received}) == members


def test_a_live_worker_on_a_slow_relay_keeps_its_claims(make_app: Any, database_uri: str, clock: FrozenClock, smtp: Any,
                                                        tmp_path: Path) -> None:
    """A worker whose batch takes many heartbeat periods (slow relay) is alive: nothing it claimed is taken back."""
    app = make_app(MAILER_TICK_SECONDS=0.2)  # as the worker process: its heartbeat is stale after 2 s
    members = 40
    add_members(app, clock, members)
    clock.set(datetime.now(UTC))
    due_announcement(app, clock, subject="Slow relay")
    smtp.slow_down(0.25)  # 40 messages in one batch: 10 s, beyond the 2 s after which a heartbeat is stale
    worker = WorkerProcess(database_uri, smtp, tmp_path / "worker.log", MAILER_BATCH_SIZE=members)
    try:
        wait_until(lambda: delivery_states(app)[DeliveryState.SENDING] > 0, 30, "the batch claimed")
        stale_after = settings_of(app).heartbeat_stale_after.total_seconds()
        deadline = time.monotonic() + 2.5 * stale_after
        released = 0
        while time.monotonic() < deadline and delivery_states(app)[DeliveryState.SENDING] > 0:
            released += release_all(app)
            time.sleep(0.2)
        assert delivery_states(app)[DeliveryState.SENDING] > 0, "the batch ended before the heartbeat could age"
        assert released == 0
        wait_until(lambda: delivery_states(app) == Counter({DeliveryState.SENT: members}), 60, "all rows sent")
    finally:
        assert worker.stop() == 0, worker.log()[-2000:]
    recipients = Counter(r.rcpt_tos[0] for r in smtp.received)
    assert len(recipients) == members and set(recipients.values()) == {1}
    assert "worker that stopped" not in worker.log()


def test_release_matches_the_worker_id_exactly(app: Any, clock: FrozenClock) -> None:
    """Only claims whose worker id equals a stopped worker's go back: not w/2 for w, not host:12 for host:1."""
    now = clock.now()
    stale, fresh = now - timedelta(minutes=1), now - timedelta(seconds=1)
    heartbeats = {"host:1": stale, "host:12": fresh, "w": stale, "w/2": fresh, "a": fresh, "a:b": stale}
    claims = {
        "host:1:0123456789ab": True,
        "host:12:0123456789ab": False,
        "w:0123456789ab": True,
        "w/2:0123456789ab": False,
        "a:0123456789ab": False,  # worker "a" is alive; "a:b" stopped
        "a:b:0123456789ab": True,
        "ghost:0123456789ab": False,  # never wrote a heartbeat: only the lease releases it
    }
    with app.app_context():
        with transaction(db.session):
            for worker_id, at in heartbeats.items():
                db.session.add(WorkerHeartbeat(worker_id=worker_id, last_tick_at=at))
            for claim in claims:
                db.session.add(OutboxMessage(
                    kind=MailKind.TEST, to_address="someone@example.org", state=OutboxState.SENDING, created_at=now,
                    next_attempt_at=now, claimed_at=now, claimed_by=claim,
                ))
        settings = settings_of(app).engine_settings
        assert settings.stale_after < timedelta(minutes=1)
        released = release_expired_claims(db.session, OutboxQueue, settings=settings, clock=clock)
        left = dict(db.session.execute(select(OutboxMessage.claimed_by, OutboxMessage.state)).all())
    assert released == sum(claims.values())
    assert left == {claim: OutboxState.SENDING for claim, gone in claims.items() if not gone} | {
        None: OutboxState.PENDING
    }
