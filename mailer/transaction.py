"""The one way a unit of work ends: commit, or roll back and re-raise."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.orm import Session


@contextmanager
def transaction(session: Session) -> Iterator[Session]:
    """End every unit of work the same way, so no path forgets the rollback."""
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
