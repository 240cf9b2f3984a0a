"""One worker per SQLite database (S7): SQLite has no SKIP LOCKED, so a second worker waits.

PostgreSQL needs no lock: several workers share the work through their claims."""

from __future__ import annotations

import fcntl
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.engine import make_url

log = logging.getLogger(__name__)


def sqlite_path(database_uri: str) -> str | None:
    url = make_url(database_uri)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return os.path.abspath(url.database)


@contextmanager
def single_worker(database_uri: str, *, wait: bool = True, poll_seconds: float = 2.0) -> Iterator[None]:
    """Hold the worker lock of a SQLite database for as long as the block runs.

    With wait=False, raises RuntimeError at once when another worker holds it."""
    path = sqlite_path(database_uri)
    if path is None:
        yield
        return
    lock_path = path + ".worker-lock"
    with open(lock_path, "a+") as handle:
        announced = False
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "unknown"
                if not wait:
                    raise RuntimeError(
                        f"another worker ({holder}) is already running on this SQLite database; "
                        "SQLite supports one worker: stop the other one, or use PostgreSQL for several"
                    ) from None
                if not announced:
                    log.warning(
                        "worker: another worker (%s) is running on this SQLite database; waiting for it to stop "
                        "(SQLite supports one worker; use PostgreSQL for several)", holder,
                    )
                    announced = True
                time.sleep(poll_seconds)
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        if announced:
            log.info("worker: the other worker stopped; starting")
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
