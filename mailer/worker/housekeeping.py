"""Daily housekeeping: remove what we no longer have a reason to keep (C3), and remind signups to confirm."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

from sqlalchemy import CursorResult, delete, or_, select, update
from sqlalchemy.orm import Session

from mailer.clock import Clock
from mailer.mail.outbox import QueuedMail, enqueue_mails
from mailer.members.addresses import address_hash
from mailer.members.csv.uploads import UPLOAD_KEEP, remove_stale_uploads
from mailer.members.one_member import purge_address_changes
from mailer.models import (
    AuditEvent,
    Delivery,
    DeliveryState,
    MailKind,
    Member,
    MemberDeparture,
    MemberStatus,
    OutboxMessage,
    OutboxState,
    Suppression,
)
from mailer.rate_limits import purge_rate_limits

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PurgeCounts:
    unconfirmed_members: int
    outbox_messages: int
    deliveries_anonymised: int = 0
    rate_limit_windows: int = 0
    departures: int = 0
    audit_events: int = 0

    def describe(self) -> str:
        return (
            f"purged {self.unconfirmed_members} unconfirmed signup(s), {self.outbox_messages} old outbox "
            f"message(s), {self.rate_limit_windows} ended rate-limit window(s), {self.audit_events} old audit "
            f"event(s), {self.departures} departure note(s) older than a day; anonymised "
            f"{self.deliveries_anonymised} old delivery record(s)"
        )


@dataclass(frozen=True)
class Retention:
    unconfirmed: timedelta = timedelta(days=30)
    outbox: timedelta = timedelta(days=30)
    deliveries: timedelta = timedelta(days=365)
    audit: timedelta = timedelta(days=730)



def purge(session: Session, *, clock: Clock, retention: Retention) -> PurgeCounts:
    """Delete signups never confirmed within the retention period, finished outbox rows,
    rate-limit windows that have ended and audit events past their retention period.

    A pending member who was once a member (re-joining after leaving) is kept: their
    consent history is evidence we must not lose."""
    now = clock.now()
    stale = list(
        session.scalars(
            select(Member.id).where(
                Member.status == MemberStatus.PENDING,
                Member.confirmed_at.is_(None),
                Member.created_at < now - retention.unconfirmed,
            )
        )
    )
    if stale:
        session.execute(delete(Member).where(Member.id.in_(stale)).execution_options(synchronize_session=False))
    purge_address_changes(session, before=now - retention.unconfirmed)
    finished = cast("CursorResult[Any]", session.execute(  # DML runs on a cursor: rowcount is there
        delete(OutboxMessage)
        .where(
            OutboxMessage.state.in_([OutboxState.SENT, OutboxState.FAILED, OutboxState.DROPPED]),
            OutboxMessage.created_at < now - retention.outbox,
        )
        .execution_options(synchronize_session=False)
    ))
    anonymised = cast("CursorResult[Any]", session.execute(
        update(Delivery)
        .where(
            Delivery.member_id.is_not(None),
            Delivery.state.in_([DeliveryState.SENT, DeliveryState.FAILED, DeliveryState.SKIPPED]),
            Delivery.next_attempt_at < now - retention.deliveries,
        )
        .values(member_id=None, last_error=None)
        .execution_options(synchronize_session=False)
    ))
    # A departure matters only to a send that was under way when it happened (engine/departures.py).
    departures = cast("CursorResult[Any]", session.execute(
        delete(MemberDeparture).where(MemberDeparture.left_at < now - timedelta(days=1))
        .execution_options(synchronize_session=False)
    ))
    # The one place audit rows are deleted (V5): past the retention period, never one by one.
    old_audit = cast("CursorResult[Any]", session.execute(
        delete(AuditEvent).where(AuditEvent.created_at < now - retention.audit).execution_options(
            synchronize_session=False)
    ))
    return PurgeCounts(
        departures=departures.rowcount or 0,
        unconfirmed_members=len(stale),
        outbox_messages=finished.rowcount or 0,
        deliveries_anonymised=anonymised.rowcount or 0,
        rate_limit_windows=purge_rate_limits(session, now=now),
        audit_events=old_audit.rowcount or 0,
    )


# No reminder in the last day before an unconfirmed signup is purged: its link would stop working at once.
REMINDER_BEFORE_PURGE = timedelta(days=1)


def send_confirm_reminders(
    session: Session, *, clock: Clock, after: timedelta, retention: Retention, suppression_key: bytes
) -> int:
    """Queue the one reminder to confirm (issue 20.7) for each pending signup whose join, and last
    confirmation email, are at least `after` old; returns how many were queued.

    Never twice: the member's confirm_reminder_sent_at is set in the same statement that picks them (a
    second worker's run finds it set). Never to a suppressed address, whatever the reason (bounces,
    complaints, an erasure), nor to a signup the purge will delete within a day. The mail itself is built
    at send time like a confirmation (a fresh link of the member's current version, valid for
    MAILER_CONFIRM_MAX_AGE_DAYS), so a member who confirms or leaves before it goes gets nothing."""
    now = clock.now()
    cutoff = now - after
    candidates = session.execute(
        select(Member.id, Member.email_key).where(
            Member.status == MemberStatus.PENDING,
            Member.confirm_reminder_sent_at.is_(None),
            Member.created_at <= cutoff,
            or_(Member.last_confirmation_sent_at.is_(None), Member.last_confirmation_sent_at <= cutoff),
            # One who never confirmed is purged at retention.unconfirmed (a re-joiner is kept: see purge).
            or_(
                Member.confirmed_at.is_not(None),
                Member.created_at > now - retention.unconfirmed + REMINDER_BEFORE_PURGE,
            ),
        )
    ).all()
    if not candidates:
        return 0
    hashes = {address_hash(suppression_key, email_key): member_id for member_id, email_key in candidates}
    suppressed = {
        hashes[h] for h in session.scalars(select(Suppression.address_hash).where(Suppression.address_hash.in_(hashes)))
    }
    wanted = [member_id for member_id, _ in candidates if member_id not in suppressed]
    if not wanted:
        return 0
    marked = list(
        session.scalars(
            update(Member)
            .where(Member.id.in_(wanted), Member.confirm_reminder_sent_at.is_(None))
            .values(confirm_reminder_sent_at=now)
            .returning(Member.id)
            .execution_options(synchronize_session=False)
        )
    )
    enqueue_mails(session, [QueuedMail(MailKind.CONFIRM_REMINDER, member_id=i) for i in sorted(marked)], clock=clock)
    return len(marked)


def remove_old_import_files(directory: Path, *, clock: Clock, keep: timedelta = UPLOAD_KEEP) -> int:
    """Delete CSV uploads and import results older than a day (they list people's addresses);
    returns how many. A directory that cannot be read is logged, never an error for the caller."""
    try:
        return remove_stale_uploads(directory, clock=clock, keep=keep)
    except OSError as exc:
        log.warning("housekeeping: could not clear old import files: %s", type(exc).__name__)
        return 0
