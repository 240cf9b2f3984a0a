"""Daily housekeeping: remove what we no longer have a reason to keep (C3)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from .clock import Clock
from .models import Member, MemberStatus, OutboxMessage, OutboxState


@dataclass(frozen=True)
class PurgeCounts:
    unconfirmed_members: int
    outbox_messages: int

    def describe(self) -> str:
        return f"purged {self.unconfirmed_members} unconfirmed signup(s), {self.outbox_messages} old outbox message(s)"


def purge(session: Session, *, clock: Clock, unconfirmed_after: timedelta, outbox_after: timedelta) -> PurgeCounts:
    """Delete signups never confirmed within the retention period, and finished outbox rows.

    A pending member who was once a member (re-joining after leaving) is kept: their
    consent history is evidence we must not lose."""
    now = clock.now()
    stale = list(
        session.scalars(
            select(Member.id).where(
                Member.status == MemberStatus.PENDING,
                Member.confirmed_at.is_(None),
                Member.created_at < now - unconfirmed_after,
            )
        )
    )
    if stale:
        session.execute(delete(Member).where(Member.id.in_(stale)).execution_options(synchronize_session=False))
    finished = session.execute(
        delete(OutboxMessage)
        .where(
            OutboxMessage.state.in_([OutboxState.SENT, OutboxState.FAILED, OutboxState.DROPPED]),
            OutboxMessage.created_at < now - outbox_after,
        )
        .execution_options(synchronize_session=False)
    )
    return PurgeCounts(unconfirmed_members=len(stale), outbox_messages=finished.rowcount or 0)
