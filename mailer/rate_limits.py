"""Rate-limit counters kept in the database, shared by every web process and kept over restarts (issue 15).

Fixed windows: a key's first hit opens a window of `expiry` seconds, every hit in it adds to the
count, and the first hit after it ends opens a new one. The increment is one statement
(INSERT ... ON CONFLICT DO UPDATE ... RETURNING, on SQLite and PostgreSQL alike), so two
processes hitting the same key at the same moment both count. The limits library's storage for
Flask-Limiter (mailer/web/limit_storage.py) is a thin adapter over these functions."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Connection, CursorResult, case, delete, literal, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from mailer.models import RateLimitCounter, UTCDateTime

KEY_LENGTH = 255


def stored_key(key: str) -> str:
    """The key as kept in the table: itself when it fits, else a hash of it (one key, one row)."""
    if len(key) <= KEY_LENGTH:
        return key
    return "sha256:" + hashlib.sha256(key.encode("utf-8")).hexdigest()


def increment_counter(connection: Connection, key: str, *, now: datetime, expiry: timedelta, amount: int = 1) -> int:
    """Add `amount` to the key's count in its current window (opening a new window when there is
    none or it has ended) and return the new count; the caller owns the transaction."""
    insert = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
    statement = insert(RateLimitCounter).values(key=stored_key(key), expires_at=now + expiry, count=amount)
    ended = RateLimitCounter.expires_at <= literal(now, UTCDateTime())
    upsert = statement.on_conflict_do_update(
        index_elements=["key"],
        set_={
            "count": case((ended, statement.excluded.count), else_=RateLimitCounter.count + statement.excluded.count),
            "expires_at": case((ended, statement.excluded.expires_at), else_=RateLimitCounter.expires_at),
        },
    ).returning(RateLimitCounter.count)
    return int(connection.execute(upsert).scalar_one())


def find_count(connection: Connection, key: str, *, now: datetime) -> int:
    """The key's count in its current window; 0 when it has none."""
    count = connection.scalar(
        select(RateLimitCounter.count).where(
            RateLimitCounter.key == stored_key(key), RateLimitCounter.expires_at > now
        )
    )
    return int(count or 0)


def find_window_end(connection: Connection, key: str, *, now: datetime) -> datetime:
    """When the key's current window ends; `now` when it has none."""
    expires_at = connection.scalar(
        select(RateLimitCounter.expires_at).where(
            RateLimitCounter.key == stored_key(key), RateLimitCounter.expires_at > now
        )
    )
    return expires_at or now


def clear_counter(connection: Connection, key: str) -> None:
    connection.execute(delete(RateLimitCounter).where(RateLimitCounter.key == stored_key(key)))


def clear_all_counters(connection: Connection) -> int:
    return int(connection.execute(delete(RateLimitCounter)).rowcount or 0)


def purge_rate_limits(session: Session, *, now: datetime) -> int:
    """Delete windows that have ended (daily housekeeping); returns how many."""
    result = cast("CursorResult[Any]", session.execute(  # DML runs on a cursor: rowcount is there
        delete(RateLimitCounter).where(RateLimitCounter.expires_at <= now).execution_options(synchronize_session=False)
    ))
    return int(result.rowcount or 0)
