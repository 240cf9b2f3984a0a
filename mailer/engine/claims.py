"""Claim due rows so that each is sent by one worker (S3, S7).

A claim takes rows that are pending and due, earliest first, in the order of the queue index
(scope columns, state, next_attempt_at, id): a range scan that stops after `limit` rows, however
many sent rows earlier sends left in the table. PostgreSQL: one UPDATE ... WHERE id IN (SELECT
... FOR UPDATE SKIP LOCKED) RETURNING id, so several workers share the work. SQLite: a
conditional UPDATE tagged with a claim id, for the one worker it runs.

A claim older than the lease belongs to a worker that crashed (or hung): release_expired hands
its rows back as pending at the start of each tick, and they are sent again (at-least-once)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, and_, any_, func, select, update
from sqlalchemy.orm import Session


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
