"""Worker heartbeats (P2, S6): each worker writes one row after every tick, and twice a second from a
thread of its own while it runs (worker/process.py), so other workers can tell it is alive
(engine/claims.py); mailer.health reads them for /healthz."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import Connection, CursorResult, delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from mailer.models import WorkerHeartbeat


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
