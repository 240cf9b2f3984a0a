"""`RATELIMIT_STORAGE_URI = "database://"`: Flask-Limiter's counters in the app's own database (issue 15).

The limits library registers every `Storage` subclass under the schemes in its STORAGE_SCHEME, so
importing this module (create_app does, before Flask-Limiter starts) is what makes `database://`
a storage URI. Each call uses a connection of its own and commits at once: a count must stand
whatever happens to the request's own transaction. Time is the app's clock, so the same frozen
clock that drives the rest of a test drives its rate-limit windows too. `memory://`, `redis://`
and the library's other storages stay available by configuration."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from flask import current_app
from limits.storage import Storage
from sqlalchemy.exc import SQLAlchemyError

from mailer import rate_limits
from mailer.clock import Clock
from mailer.extensions import db


class DatabaseStorage(Storage):
    """Fixed-window counters in the `rate_limit` table of the current app's database."""

    STORAGE_SCHEME = ["database"]

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False, **options: Any) -> None:
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return SQLAlchemyError

    @staticmethod
    def _now() -> datetime:
        clock: Clock = current_app.extensions["mailer.clock"]
        return clock.now()

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        now = self._now()
        with db.engine.begin() as connection:
            return rate_limits.increment_counter(
                connection, key, now=now, expiry=timedelta(seconds=expiry), amount=amount
            )

    def get(self, key: str) -> int:
        with db.engine.connect() as connection:
            return rate_limits.find_count(connection, key, now=self._now())

    def get_expiry(self, key: str) -> float:
        with db.engine.connect() as connection:
            return rate_limits.find_window_end(connection, key, now=self._now()).astimezone(UTC).timestamp()

    def check(self) -> bool:
        try:
            with db.engine.connect() as connection:
                rate_limits.find_count(connection, "check", now=self._now())
        except SQLAlchemyError:
            return False
        return True

    def reset(self) -> int | None:
        with db.engine.begin() as connection:
            return rate_limits.clear_all_counters(connection)

    def clear(self, key: str) -> None:
        with db.engine.begin() as connection:
            rate_limits.clear_counter(connection, key)
