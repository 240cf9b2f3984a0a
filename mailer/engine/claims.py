"""Claim due rows so that each is sent by one worker (S3, S7).

A claim takes rows that are pending and due, earliest first, in the order of the queue index
(scope columns, state, next_attempt_at, id): a range scan that stops after `limit` rows, however
many sent rows earlier sends left in the table. PostgreSQL: one UPDATE ... WHERE id IN (SELECT
... FOR UPDATE SKIP LOCKED) RETURNING id, so several workers share the work. SQLite: a
conditional UPDATE tagged with a claim id, for the one worker it runs.

A claim id is `<worker_id>:<12 hex digits>` (claim_worker reads the worker id back; worker ids may
contain ':' themselves). At the start of each tick, claims go back in the queue as pending (and are
sent again: at-least-once) when they belong to a worker that stopped:

- release_stopped: its worker's heartbeat (worker_heartbeat) is older than a few ticks, so the rows
  of a worker killed mid-send wait seconds, not the lease; a live worker's heartbeat is written by a
  thread of its own (worker/process.py), however slow its relay, so its claims are never taken;
- release_expired, the last resort: the claim is older than the lease (a worker that never wrote a
  heartbeat, such as a `send-due` run that crashed, or one that hung)."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, and_, any_, func, select, update
from sqlalchemy.orm import Session

from mailer.models import WorkerHeartbeat


def claim_due(
    session: Session,
    model: Any,
    *,
    pending: Any,
    sending: Any,
    worker_id: str,
    now: datetime,
    limit: int,
    scope: Any = None,
) -> list[int]:
    """Mark up to `limit` due rows as being sent by this worker and return their ids, in queue order.

    The model needs id, state, next_attempt_at, claimed_at and claimed_by columns; `scope` is an
    equality on the index's leading columns (a delivery's announcement). Runs in the caller's
    transaction; commit right after, before any SMTP."""
    due = and_(model.state == pending, model.next_attempt_at <= now)
    if scope is not None:
        due = and_(scope, due)
    claim_id = f"{worker_id}:{uuid.uuid4().hex[:12]}"
    candidates = select(model.id).where(due).order_by(model.next_attempt_at, model.id).limit(limit)
    take = {"state": sending, "claimed_at": now, "claimed_by": claim_id}
    if session.get_bind().dialect.name == "postgresql":
        # id = ANY(ARRAY(SELECT ...)): the planner looks up each locked id by primary key; with
        # IN (SELECT ...) it may read the whole table to join the two.
        locked = func.array(candidates.with_for_update(skip_locked=True).scalar_subquery())
        claimed = session.scalars(
            update(model)
            .where(model.id == any_(locked))
            .values(take)
            .returning(model.id)
            .execution_options(synchronize_session=False)
        )
        return sorted(claimed)
    ids = list(session.scalars(candidates))
    if not ids:
        return []
    session.execute(
        update(model).where(model.id.in_(ids), due).values(take).execution_options(synchronize_session=False)
    )
    return list(session.scalars(select(model.id).where(model.id.in_(ids), model.claimed_by == claim_id)))


def release_expired(
    session: Session, model: Any, *, pending: Any, sending: Any, now: datetime, lease: timedelta, scope: Any = None
) -> int:
    """Hand rows claimed longer ago than `lease` back as pending (still due); returns how many.

    Reads only the rows being sent (state 'sending' is a short range of the queue index)."""
    expired = and_(model.state == sending, model.claimed_at < now - lease)
    if scope is not None:
        expired = and_(scope, expired)
    result = cast("CursorResult[Any]", session.execute(  # DML runs on a cursor: rowcount is there
        update(model)
        .where(expired)
        .values(state=pending, claimed_at=None, claimed_by=None)
        .execution_options(synchronize_session=False)
    ))
    return max(result.rowcount or 0, 0)


def claim_worker(claim_id: str) -> str:
    """The worker id of a claim id `<worker_id>:<12 hex digits>`: all before the last ':'."""
    return claim_id.rpartition(":")[0]


def stale_workers(session: Session, worker_ids: Collection[str], *, older_than: datetime) -> set[str]:
    """Which of `worker_ids` last wrote their heartbeat before `older_than` (primary-key lookups).

    A worker with no heartbeat row is not among them: only the lease releases its claims."""
    if not worker_ids:
        return set()
    return set(
        session.scalars(
            select(WorkerHeartbeat.worker_id).where(
                WorkerHeartbeat.worker_id.in_(sorted(worker_ids)), WorkerHeartbeat.last_tick_at < older_than
            )
        )
    )


def release_stopped(
    session: Session, model: Any, *, pending: Any, sending: Any, now: datetime, stale_after: timedelta,
    scope: Any = None, also: Collection[str] = (),
) -> int:
    """Hand back as pending the rows claimed by workers whose heartbeat is older than `stale_after`,
    and by the workers named in `also` (a restarted worker's own id); returns how many.

    Reads the distinct claim ids of the rows being sent (a short range of the queue index), matches
    their worker ids exactly against the heartbeat table, then releases by claim id (equality), so a
    worker id that is a prefix of another (`w` and `w/2`, `host:1` and `host:12`) never matches it."""
    sending_now = model.state == sending
    if scope is not None:
        sending_now = and_(scope, sending_now)
    claims = {claim for claim in session.scalars(select(model.claimed_by).where(sending_now).distinct()) if claim}
    if not claims:
        return 0
    holders = {claim_worker(claim) for claim in claims}
    stopped = stale_workers(session, holders, older_than=now - stale_after) | (holders & set(also))
    released = sorted(claim for claim in claims if claim_worker(claim) in stopped)
    if not released:
        return 0
    result = cast("CursorResult[Any]", session.execute(
        update(model)
        .where(sending_now, model.claimed_by.in_(released))
        .values(state=pending, claimed_at=None, claimed_by=None)
        .execution_options(synchronize_session=False)
    ))
    return max(result.rowcount or 0, 0)
