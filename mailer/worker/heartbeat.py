"""Worker heartbeats and the outbox backlog: what /healthz tells a monitor about sending (P2, S6).

Each worker writes one row after every tick; the web app only reads. Both queries
the health check runs are small and indexed, so a monitor may poll it often."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Connection, CursorResult, delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from mailer.models import OutboxMessage, OutboxState, WorkerHeartbeat


def record_tick(connection: Connection, worker_id: str, *, now: datetime) -> None:
    """Upsert this worker's row in one statement; the caller owns the transaction.

    A connection of its own, not the engine's session, so a heartbeat never commits
    or waits on the engine's unit of work."""
    insert = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
    statement = insert(WorkerHeartbeat).values(worker_id=worker_id, last_tick_at=now)
    connection.execute(statement.on_conflict_do_update(index_elements=["worker_id"], set_={"last_tick_at": now}))


def purge_heartbeats(session: Session, *, older_than: datetime) -> int:
    """Forget workers that have not ticked for a long time (a restart gets a new default id)."""
    statement = delete(WorkerHeartbeat).where(WorkerHeartbeat.last_tick_at < older_than)
    result = cast("CursorResult[Any]", session.execute(statement))  # DML runs on a cursor: rowcount is there
    return int(result.rowcount or 0)


@dataclass(frozen=True)
class SendingHealth:
    """What a monitor needs to alert on: is a worker ticking, and is transactional mail piling up?"""

    last_tick_at: datetime | None
    workers_recent: int
    outbox_pending: int
    oldest_pending_at: datetime | None
    earliest_due_at: datetime | None  # of pending mail; retries wait for their backoff

    def as_json(self, now: datetime) -> dict[str, Any]:
        def age(moment: datetime | None) -> float | None:
            return None if moment is None else round(max((now - moment).total_seconds(), 0.0), 1)

        return {
            "worker": {
                "last_tick_at": self.last_tick_at.isoformat() if self.last_tick_at else None,
                "seconds_since_last_tick": age(self.last_tick_at),
                "recent_workers": self.workers_recent,
            },
            "outbox": {
                "pending": self.outbox_pending,
                "oldest_pending_age_seconds": age(self.oldest_pending_at),
                # How long the most overdue message has been waiting past its due time: near 0 while
                # a worker keeps up, unlike the age, which a retrying address keeps high for hours.
                "overdue_seconds": age(self.earliest_due_at) or 0.0,
            },
        }


def find_sending_health(session: Session, *, now: datetime, recent: timedelta) -> SendingHealth:
    """Two aggregate queries: the heartbeat table (a row per worker) and the outbox's (state, ...) index."""
    last_tick_at, workers_recent = session.execute(
        select(
            func.max(WorkerHeartbeat.last_tick_at),
            func.count().filter(WorkerHeartbeat.last_tick_at >= now - recent),
        )
    ).one()
    pending, oldest, earliest_due = session.execute(
        select(func.count(), func.min(OutboxMessage.created_at), func.min(OutboxMessage.next_attempt_at))
        .where(OutboxMessage.state == OutboxState.PENDING)
    ).one()
    return SendingHealth(
        last_tick_at=_aware(last_tick_at),
        workers_recent=int(workers_recent or 0),
        outbox_pending=int(pending or 0),
        oldest_pending_at=_aware(oldest),
        earliest_due_at=_aware(earliest_due),
    )


def _aware(value: datetime | str | None) -> datetime | None:
    """Aggregates bypass the column type on SQLite: values may come back naive or as text."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
