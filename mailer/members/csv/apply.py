"""Carrying out an import (J6, C1, C3): the plan's new people written a chunk at a time.

Consent events and confirmation mail go through the same functions a single join uses
(record_consents and enqueue_mails, of which record_consent and enqueue_mail are the
one-row forms), so an imported member's evidence row is the one a join would write for the
same facts. No Flask here: callers pass a session, a clock and ImportSettings, and turn
InvalidInput (a file that cannot be read as a members list) into a message."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mailer.clock import Clock, FrozenClock
from mailer.mail.outbox import QueuedMail, enqueue_mails
from mailer.members.consent import ConsentRecord, Evidence, record_consents
from mailer.members.csv.parse import CHUNK_SIZE, ParsedRow, groups_by_name, parsed_chunks
from mailer.members.csv.plan import ADDS, ImportSummary, Outcome, RowOutcome, classify
from mailer.models import (
    ConsentAction,
    ConsentMethod,
    MailKind,
    Member,
    MemberStatus,
    OutboxMessage,
    OutboxState,
    member_group,
    table_of,
)
from mailer.transaction import transaction

log = logging.getLogger(__name__)

IMPORT_EVIDENCE = Evidence(method=ConsentMethod.IMPORT)

# The state each kind of new row starts in.
NEW_STATUS = {
    Outcome.NEW_PENDING: MemberStatus.PENDING,
    Outcome.NEW_MEMBER_WITH_EVIDENCE: MemberStatus.MEMBER,
    Outcome.NEW_UNSUBSCRIBED: MemberStatus.UNSUBSCRIBED,
}


@dataclass(frozen=True)
class ImportSettings:
    suppression_key: bytes
    confirmations_per_minute: float = 60.0
    chunk_size: int = CHUNK_SIZE


def apply_import(
    session: Session,
    lines: Iterable[str],
    *,
    settings: ImportSettings,
    clock: Clock,
    admin_id: int | None = None,
    on_row: Callable[[RowOutcome], None] | None = None,
) -> ImportSummary:
    """Import these lines: add new people by the consent rules, leave everyone else alone.

    Writes and commits a chunk at a time (one transaction for 100,000 rows would hold
    the write lock and the memory for minutes), so unlike other domain functions this
    one commits. Each chunk is looked up again just before it is written, so the result
    matches plan_import unless the list changed in between; a chunk that loses a race
    with someone joining through the form is looked up and written again.
    Confirmation requests are queued with send times spread at
    settings.confirmations_per_minute, after any already queued, so a big import does
    not flood the mail relay. Every row is written as of the moment the import started.
    Call plan_import over the same file first: a file that turns out to be unreadable
    part-way raises InvalidInput after earlier chunks were committed (the web and
    command-line imports always preview the whole file first)."""
    started = FrozenClock(clock.now())
    groups = groups_by_name(session)
    spacing = _spacing(settings.confirmations_per_minute)
    next_send = _first_send_time(session, started.now(), spacing)
    summary = ImportSummary(keep_rows=200, keep_problems=500)
    for rows in parsed_chunks(lines, groups, clock, settings.chunk_size):
        for attempt in (1, 2):
            try:
                with transaction(session):
                    outcomes = classify(session, settings.suppression_key, rows)
                    send_times = write_chunk(
                        session, rows, outcomes, clock=started, first_send=next_send, spacing=spacing,
                        admin_id=admin_id,
                    )
                break
            except IntegrityError:
                if attempt == 2:
                    raise
                log.info("import: a chunk met a concurrent signup; looking it up again")
        if send_times:
            summary.first_confirmation_at = summary.first_confirmation_at or send_times[0]
            summary.last_confirmation_at = send_times[-1]
            next_send = send_times[-1] + spacing
        for outcome in outcomes:
            summary.add(outcome)
            if on_row is not None:
                on_row(outcome)
    who = f"admin {admin_id}" if admin_id else "the command line"
    log.info("import by %s: %s", who, " ".join(summary.describe(applied=True)))
    return summary


def write_chunk(
    session: Session,
    rows: Sequence[ParsedRow],
    outcomes: Sequence[RowOutcome],
    *,
    clock: Clock,
    first_send: datetime,
    spacing: timedelta,
    admin_id: int | None,
) -> list[datetime]:
    """Write one chunk's new people, their groups, consent events and confirmation requests, a few
    multi-row statements in all; returns the confirmation send times. The caller commits."""
    new = [(row, outcome.outcome) for row, outcome in zip(rows, outcomes, strict=True) if outcome.outcome in ADDS]
    if not new:
        return []
    send_times: list[datetime] = []
    send_at: list[datetime | None] = []
    for _, outcome in new:
        when = None
        if outcome is Outcome.NEW_PENDING:
            when = first_send + spacing * len(send_times)
            send_times.append(when)
        send_at.append(when)
    ids = insert_members(session, [(row, NEW_STATUS[outcome]) for row, outcome in new], send_at, clock=clock)
    links = [{"member_id": i, "group_id": g} for i, (row, _) in zip(ids, new, strict=True) for g in row.group_ids]
    if links:
        session.execute(insert(member_group), links)
    record_consents(
        session,
        [
            ConsentRecord(
                member_id=i,
                email=row.email,
                action=(
                    ConsentAction.IMPORTED if outcome is Outcome.NEW_MEMBER_WITH_EVIDENCE else ConsentAction.WITHDRAWN
                ),
                evidence=IMPORT_EVIDENCE,
                detail=event_detail(row, admin_id),
            )
            for i, (row, outcome) in zip(ids, new, strict=True)
            if outcome is not Outcome.NEW_PENDING
        ],
        clock=clock,
    )
    enqueue_mails(
        session,
        [
            QueuedMail(MailKind.CONFIRM, member_id=i, send_at=when)
            for i, when in zip(ids, send_at, strict=True)
            if when is not None
        ],
        clock=clock,
    )
    return send_times


def insert_members(
    session: Session,
    new: Sequence[tuple[ParsedRow, MemberStatus]],
    send_at: Sequence[datetime | None],
    *,
    clock: Clock,
) -> list[int]:
    """Insert new members in one multi-row statement; returns their ids in the same order.

    What a join sets, and the model's defaults for the rest (link key, token version, bounce
    count), as the join form's Member() gets them. A member with a confirmation to send has
    last_confirmation_sent_at at its send time, so a resend cannot overtake it (J1 throttle)."""
    now = clock.now()
    values = [
        {
            "email": row.email,
            "email_key": row.email_key,
            "name": row.name,
            "status": status,
            "social_media": row.social_media,
            "created_at": now,
            "updated_at": now,
            "confirmed_at": now if status is MemberStatus.MEMBER else None,
            "unsubscribed_at": now if status is MemberStatus.UNSUBSCRIBED else None,
            "last_confirmation_sent_at": when,
        }
        for (row, status), when in zip(new, send_at, strict=True)
    ]
    # A Core insert on the table (the column types still convert enums and UTC times): the ORM's
    # bulk path is several times slower here, and these rows need no ORM objects.
    # No RETURNING: SQLite cannot promise its order for a multi-row insert, and SQLAlchemy falls
    # back to one statement per row; the ids come back in one query on the unique key instead.
    session.execute(insert(table_of(Member)), values)
    keys = [row.email_key for row, _ in new]
    found = dict(session.execute(select(Member.email_key, Member.id).where(Member.email_key.in_(keys))).all())
    return [found[key] for key in keys]


def event_detail(row: ParsedRow, admin_id: int | None) -> dict[str, Any]:
    """The row's evidence unchanged (C1: what they were told, when, how), and where it came from."""
    detail: dict[str, Any] = {"line": row.line, "imported_by_admin_id": admin_id}
    if row.evidence is not None:
        detail["evidence"] = dict(row.evidence)
    if row.left:
        detail["note"] = "the imported file says they left the list"
    return detail


def _spacing(per_minute: float) -> timedelta:
    """Time between two import confirmations; zero or less means no spreading."""
    return timedelta(seconds=60.0 / per_minute) if per_minute > 0 else timedelta(0)


def _first_send_time(session: Session, now: datetime, spacing: timedelta) -> datetime:
    """Now, or after the last confirmation an earlier import queued, so two imports do not double the rate."""
    latest = session.scalar(
        select(func.max(OutboxMessage.next_attempt_at)).where(
            OutboxMessage.kind == MailKind.CONFIRM, OutboxMessage.state == OutboxState.PENDING
        )
    )
    if latest is None or latest < now:
        return now
    return latest + spacing
