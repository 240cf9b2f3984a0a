"""Claims (S3, S7): a batch is a short range of the queue index, however many rows earlier sends
left behind; expired claims go back in the queue; rows not due stay put. On SQLite and PostgreSQL.

The plan checks read the database's own EXPLAIN for the statements the engine runs, on a table
where most rows are long sent: a claim that reads or sorts the whole table makes a send O(n^2)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event, insert, select, text, update

from mailer.engine.announcement_sender import DeliveryQueue
from mailer.engine.queue import release_expired_claims
from mailer.engine.settings import EngineSettings
from mailer.extensions import db
from mailer.models import Announcement, AnnouncementState, Delivery, DeliveryState
from support.factories import due_announcement

BATCH = 100


def settings(worker: str = "worker-a", lease_seconds: float = 300) -> EngineSettings:
    return EngineSettings(worker_id=worker, envelope_from="bounces@forum.test", batch_size=BATCH,
                          lease=timedelta(seconds=lease_seconds))


def add_deliveries(app: Any, clock: Any, announcement_id: int, states: list[DeliveryState]) -> list[int]:
    with app.app_context():
        now = clock.now()
        db.session.execute(insert(Delivery), [
            {"announcement_id": announcement_id, "member_id": None, "state": state, "attempts": 0,
             "next_attempt_at": now}
            for state in states
        ])
        db.session.commit()
        return list(db.session.scalars(
            select(Delivery.id).where(Delivery.announcement_id == announcement_id).order_by(Delivery.id)))


def set_state(app: Any, announcement_id: int, state: AnnouncementState) -> None:
    with app.app_context():
        db.session.execute(update(Announcement).where(Announcement.id == announcement_id).values(state=state))
        db.session.commit()


def long_history(app: Any, clock: Any) -> tuple[int, list[int]]:
    """An old announcement with 6,000 rows sent, and a sending one with 1,500 sent and 500 to go."""
    old = due_announcement(app, clock, subject="Old news")
    add_deliveries(app, clock, old, [DeliveryState.SENT] * 6000)
    set_state(app, old, AnnouncementState.SENT)
    current = due_announcement(app, clock, subject="Current")
    ids = add_deliveries(app, clock, current, [DeliveryState.SENT] * 1500 + [DeliveryState.PENDING] * 500)
    set_state(app, current, AnnouncementState.SENDING)
    with app.app_context():
        if db.session.get_bind().dialect.name == "postgresql":
            db.session.execute(text("ANALYZE delivery"))
        else:
            db.session.execute(text("ANALYZE"))
        db.session.commit()
    return current, ids[1500:]


def statements_of(app: Any, action: Any) -> list[tuple[str, Any]]:
    """Run `action` in an app context and return the SQL statements it sent, with their parameters."""
    seen: list[tuple[str, Any]] = []
    with app.app_context():
        engine = db.engine

        def record(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
            seen.append((statement, parameters))

        event.listen(engine, "before_cursor_execute", record)
        try:
            action()
        finally:
            event.remove(engine, "before_cursor_execute", record)
    return seen


def postgres_plan_nodes(app: Any, statement: str, parameters: Any) -> list[dict[str, Any]]:
    with app.app_context():
        cursor = db.session.connection().connection.driver_connection.cursor()
        cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + statement, parameters)
        (plan,) = cursor.fetchone()
        db.session.rollback()
    plan = json.loads(plan) if isinstance(plan, str) else plan
    nodes, todo = [], [plan[0]["Plan"]]
    while todo:
        node = todo.pop()
        nodes.append(node)
        todo.extend(node.get("Plans", []))
    return nodes


def sqlite_plan(app: Any, statement: str, parameters: Any) -> str:
    with app.app_context():
        rows = db.session.connection().exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters).all()
        db.session.rollback()
    return "\n".join(row[-1] for row in rows)


def test_claim_reads_one_batch_of_the_queue_index_not_the_table(app, clock):
    """With 7,500 sent rows and 500 to go, a claim takes the first 100 due rows in order, reading them by
    index: no sequential scan of delivery and no more rows than are left to send on PostgreSQL, an index
    search with no sort on SQLite."""
    _current, pending = long_history(app, clock)
    claimed: list[int] = []

    def claim() -> None:
        claimed.extend(DeliveryQueue.claim(db.session, settings=settings(), clock=clock))

    statements = statements_of(app, claim)
    assert claimed == pending[:BATCH]
    with app.app_context():
        dialect = db.session.get_bind().dialect.name
    claims = [(s, p) for s, p in statements if "delivery" in s and ("UPDATE" in s or "ORDER BY" in s)]
    assert claims, [s for s, _ in statements]
    # Plan the same statement again (the next 100 rows are due now; the first 100 are being sent).
    statement, parameters = claims[0]
    if dialect == "postgresql":
        nodes = postgres_plan_nodes(app, statement, parameters)
        on_delivery = [n for n in nodes if n.get("Relation Name") == "delivery" and n["Node Type"] != "ModifyTable"]
        # An ordered index scan that stops at 100, or (when few rows are left, as here) a bitmap scan of
        # this announcement's pending rows and a sort of them: either way never the 7,500 sent rows.
        assert on_delivery and not [n for n in on_delivery if "Seq Scan" in n["Node Type"]], on_delivery
        read = sum(n["Actual Rows"] * n.get("Actual Loops", 1) for n in on_delivery)
        assert read <= len(pending) + BATCH, f"{read} delivery rows read for one claim"
    else:
        plan = sqlite_plan(app, statement, parameters)
        assert "USING INDEX ix_delivery_due" in plan or "USING COVERING INDEX ix_delivery_due" in plan, plan
        assert "TEMP B-TREE" not in plan and "SCAN delivery" not in plan, plan


def test_claims_take_due_rows_in_order_and_leave_the_rest(app, clock):
    """Two claims take disjoint batches in id order; rows waiting for a retry, and rows of a paused
    announcement, are not taken."""
    current = due_announcement(app, clock)
    ids = add_deliveries(app, clock, current, [DeliveryState.PENDING] * 250)
    set_state(app, current, AnnouncementState.SENDING)
    with app.app_context():
        later = clock.now() + timedelta(minutes=5)
        db.session.execute(update(Delivery).where(Delivery.id.in_(ids[:10])).values(next_attempt_at=later))
        db.session.commit()
        first = DeliveryQueue.claim(db.session, settings=settings("worker-a"), clock=clock)
        second = DeliveryQueue.claim(db.session, settings=settings("worker-b"), clock=clock)
        assert first == ids[10:110] and second == ids[110:210]
        owners = dict(db.session.execute(select(Delivery.id, Delivery.claimed_by)).all())
        assert {owners[i].split(":")[0] for i in first} == {"worker-a"}
        assert {owners[i].split(":")[0] for i in second} == {"worker-b"}
    set_state(app, current, AnnouncementState.PAUSED)
    with app.app_context():
        assert DeliveryQueue.claim(db.session, settings=settings("worker-c"), clock=clock) == []
    set_state(app, current, AnnouncementState.SENDING)
    clock.advance(minutes=6)
    with app.app_context():
        third = DeliveryQueue.claim(db.session, settings=settings("worker-c"), clock=clock)
        assert third == ids[:10] + ids[210:250]  # the retries' time has come; they were due first


@pytest.mark.parametrize("lease_seconds", [60])
def test_expired_claims_go_back_in_the_queue_and_live_ones_stay(app, clock, lease_seconds):
    """A claim older than the lease (its worker died) is released at the next tick and claimed again;
    a younger one is left to its worker."""
    current = due_announcement(app, clock)
    ids = add_deliveries(app, clock, current, [DeliveryState.PENDING] * 150)
    set_state(app, current, AnnouncementState.SENDING)
    with app.app_context():
        dead = DeliveryQueue.claim(db.session, settings=settings("dead", lease_seconds), clock=clock)
        clock.advance(seconds=lease_seconds - 1)
        alive = DeliveryQueue.claim(db.session, settings=settings("alive", lease_seconds), clock=clock)
        assert dead == ids[:100] and alive == ids[100:150]
        release_expired_claims(db.session, DeliveryQueue, settings=settings("new", lease_seconds), clock=clock)
        assert DeliveryQueue.claim(db.session, settings=settings("new", lease_seconds), clock=clock) == []
        clock.advance(seconds=2)  # the dead worker's claim is now older than the lease; the live one's is not
        release_expired_claims(db.session, DeliveryQueue, settings=settings("new", lease_seconds), clock=clock)
        again = DeliveryQueue.claim(db.session, settings=settings("new", lease_seconds), clock=clock)
        assert again == dead
        owners = dict(db.session.execute(select(Delivery.id, Delivery.claimed_by)).all())
        assert {owners[i].split(":")[0] for i in alive} == {"alive"}
