"""Who left while a batch is being sent: checked just before each message is written to the relay (J4).

A batch reads its members' state once, then takes seconds to go out; someone may unsubscribe in between.
The rule: once their unsubscribe has returned, no message to them is written to the relay (a message whose
content was already on the wire is the only exception). Checking the database before every write would cost a
query a message; instead database triggers (migration 0014) record every departure in `member_departure`, in
the transaction that ends the membership, and the sender looks only for what is new:

- SQLite: the rows with an id above the last one seen, read on a connection of our own outside any
  transaction (so it sees every commit), in-process: a few microseconds a message.
- PostgreSQL: the trigger also sends a NOTIFY; a connection of our own LISTENs, and the check reads what the
  server already pushed onto its socket, with no round trip. PostgreSQL signals the listening process as the
  unsubscribe commits, and it passes the notice on as soon as it runs: microseconds on a quiet server, a few
  milliseconds on a very busy one, normally before the unsubscribe's answer is back with the member. A race won
  by a wide margin rather than a hard ordering (on SQLite the look reads committed rows, so it is exact).

If the watch cannot be read (the database went away), the check says "unknown" and the caller looks the
members up in the database instead (`DepartureWatch.left` returns None)."""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from collections.abc import Iterable
from typing import Any, Protocol

from sqlalchemy.engine import URL

log = logging.getLogger(__name__)

CHANNEL = "mailer_member_left"  # the NOTIFY channel of migration 0014's trigger


class DepartureWatch(Protocol):
    """Departures since the watch began."""

    def left(self) -> set[int] | None:
        """The ids of members who left since the watch began (cumulative), or None when that cannot be known
        just now: the caller must then look in the database."""
        ...


class Departures(Protocol):
    """A process's source of departure watches, kept for the life of the process."""

    def watch(self) -> DepartureWatch:
        """Start watching: call it before the batch's members are read."""
        ...

    def close(self) -> None: ...


class _TableWatch:
    """Reads `member_departure` rows above a position (SQLite)."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection
        self._left: set[int] = set()
        self._position = self._connection.execute("SELECT coalesce(max(id), 0) FROM member_departure").fetchone()[0]

    def left(self) -> set[int] | None:
        try:
            rows = self._connection.execute(
                "SELECT id, member_id FROM member_departure WHERE id > ?", (self._position,)
            ).fetchall()
        except sqlite3.Error as exc:
            log.warning("cannot read member departures: %s", type(exc).__name__)
            return None
        for departure_id, member_id in rows:
            self._position = max(self._position, departure_id)
            self._left.add(member_id)
        return self._left


class SqliteDepartures:
    """One read-only connection to the database file, in autocommit mode."""

    def __init__(self, path: str) -> None:
        self._connection = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)

    def watch(self) -> DepartureWatch:
        return _TableWatch(self._connection)

    def close(self) -> None:
        self._connection.close()


class _NotifyWatch:
    """Collects the NOTIFYs already on the listening connection's socket (PostgreSQL)."""

    def __init__(self, source: PostgresDepartures) -> None:
        self._source = source
        self._left: set[int] = set()
        # Notices already here were committed before the batch is read, which sees them. Nothing is filtered by
        # departure id afterwards: a sequence hands ids out in a different order than transactions commit.
        self._ready = source.drain()

    def left(self) -> set[int] | None:
        received = self._source.received() if self._ready else None
        if received is None:
            return None
        self._left.update(received)
        return self._left


class PostgresDepartures:
    """A connection of its own that LISTENs and never runs a query while watching, so the server pushes each
    notice as it commits. Reconnected at the next watch when it was lost (its checks say "unknown" meanwhile)."""

    def __init__(self, conninfo: str) -> None:
        self._conninfo = conninfo
        self._connection: Any = None

    def drain(self) -> bool:
        """Listen (connecting if need be) and drop the notices received so far; False when that failed."""
        try:
            if self._connection is None or self._connection.closed:
                import psycopg

                connection = psycopg.connect(self._conninfo, autocommit=True)
                connection.execute(f"LISTEN {CHANNEL}")
                self._connection = connection
        except Exception as exc:  # any failure: the batch's checks will say "unknown"
            log.warning("cannot listen for member departures: %s", type(exc).__name__)
            self._drop()
            return False
        return self.received() is not None

    def received(self) -> set[int] | None:
        """The member ids of the notices on the socket now; None when the connection is gone."""
        connection = self._connection
        if connection is None or connection.closed:
            return None
        member_ids: set[int] = set()
        try:
            pgconn = connection.pgconn
            pgconn.consume_input()  # non-blocking: takes what the socket holds, no round trip
            while (notice := pgconn.notifies()) is not None:
                member_ids.add(int(notice.extra.decode("ascii").partition(":")[2]))
        except Exception as exc:  # any failure: "unknown" until the next watch reconnects
            log.warning("lost the member departures connection: %s", type(exc).__name__)
            self._drop()
            return None
        return member_ids

    def watch(self) -> DepartureWatch:
        return _NotifyWatch(self)

    def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                connection.close()

    def close(self) -> None:
        self._drop()


def departures_for(url: URL) -> Departures | None:
    """The departure source for a database URL (None for an in-memory SQLite database, which no other process
    can change)."""
    if url.get_backend_name() == "postgresql":
        return PostgresDepartures(url.set(drivername="postgresql").render_as_string(hide_password=False))
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        return SqliteDepartures(url.database)
    return None


def left_among(watch: DepartureWatch, member_ids: Iterable[int | None]) -> set[int] | None:
    """Which of `member_ids` left since the watch began; None when the watch cannot say."""
    left = watch.left()
    if left is None:
        return None
    return {member_id for member_id in member_ids if member_id is not None and member_id in left}


__all__ = ["CHANNEL", "DepartureWatch", "Departures", "departures_for", "left_among"]
