"""Claim due rows so that each is sent by one worker (S3, S7).

PostgreSQL: SELECT ... FOR UPDATE SKIP LOCKED, so several workers share the work.
SQLite: a conditional UPDATE tagged with a claim id, for the one worker it runs.
A claim older than the lease is taken again: that is how a crashed worker's rows go out."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select, update
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
    lease: timedelta,
    extra_where: Any = None,
) -> list[int]:
    """Mark up to `limit` due rows as being sent by this worker and return their ids.

    The model needs id, state, next_attempt_at, claimed_at and claimed_by columns.
    Runs in the caller's transaction; commit right after, before any SMTP."""
    due = or_(
        and_(model.state == pending, model.next_attempt_at <= now),
        and_(model.state == sending, model.claimed_at < now - lease),
    )
    if extra_where is not None:
        due = and_(due, extra_where)
    claim_id = f"{worker_id}:{uuid.uuid4().hex[:12]}"
    candidates = select(model.id).where(due).order_by(model.id).limit(limit)
    if session.get_bind().dialect.name == "postgresql":
        ids = list(session.scalars(candidates.with_for_update(skip_locked=True)))
        if ids:
            session.execute(
                update(model)
                .where(model.id.in_(ids))
                .values(state=sending, claimed_at=now, claimed_by=claim_id)
                .execution_options(synchronize_session=False)
            )
        return ids
    ids = list(session.scalars(candidates))
    if not ids:
        return []
    session.execute(
        update(model)
        .where(model.id.in_(ids), due)
        .values(state=sending, claimed_at=now, claimed_by=claim_id)
        .execution_options(synchronize_session=False)
    )
    return list(session.scalars(select(model.id).where(model.id.in_(ids), model.claimed_by == claim_id)))
