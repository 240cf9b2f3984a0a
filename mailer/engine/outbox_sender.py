"""Send claimed outbox rows (S6): build at send time, send, then mark sent, retry or failed."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ..clock import Clock
from ..announcement_mail import AnnouncementContent, AnnouncementMail
from ..documents import find_document_links
from ..logsafe import redact
from ..models import Announcement, MailKind, Member, MemberStatus, OutboxMessage, OutboxState
from ..transaction import transaction
from ..transactional import TransactionalMail
from ..verp import VerpKind
from .claims import claim_due, release_expired
from .idsets import in_ids
from .settings import EngineSettings
from .transport import SendFailure, ServerUnavailable, SmtpTransport, unwritable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Job:
    """What one claimed row needs once the claim is committed: plain values, no ORM objects."""

    outbox_id: int
    kind: MailKind
    to_address: str | None
    to_name: str
    link_key: str
    token_version: int
    announcement: AnnouncementContent | None = None


@dataclass
class OutboxSummary:
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    dropped: int = 0
    server_unavailable: bool = False

    def add(self, other: OutboxSummary) -> None:
        self.sent += other.sent
        self.retrying += other.retrying
        self.failed += other.failed
        self.dropped += other.dropped
        self.server_unavailable = self.server_unavailable or other.server_unavailable


def release_expired_outbox(session: Session, *, settings: EngineSettings, clock: Clock) -> None:
    """Outbox mail claimed by a worker that stopped (its lease ran out) goes back in the queue (S3)."""
    with transaction(session):
        released = release_expired(
            session, OutboxMessage, pending=OutboxState.PENDING, sending=OutboxState.SENDING, now=clock.now(),
            lease=settings.lease,
        )
    if released:
        log.warning("%d outbox message(s) claimed longer ago than the lease are sent again", released)


def send_outbox_batch(
    session: Session,
    transport: SmtpTransport,
    mail: TransactionalMail,
    announcement_mail: AnnouncementMail,
    *,
    settings: EngineSettings,
    clock: Clock,
) -> tuple[int, OutboxSummary]:
    """Claim one batch, send it, record each result. Returns (rows claimed, summary)."""
    with transaction(session):
        ids = claim_due(
            session,
            OutboxMessage,
            pending=OutboxState.PENDING,
            sending=OutboxState.SENDING,
            worker_id=settings.worker_id,
            now=clock.now(),
            limit=settings.batch_size,
        )
    if not ids:
        return 0, OutboxSummary()
    with transaction(session):
        jobs = _load_jobs(session, ids)
    summary = OutboxSummary()
    results: list[tuple[int, OutboxState, str | None]] = []
    last_marked = time.monotonic()
    for position, job in enumerate(jobs):
        if job.to_address is None:
            results.append((job.outbox_id, OutboxState.DROPPED, "nobody to send it to any more"))
            summary.dropped += 1
            continue
        try:
            if job.kind is MailKind.TEST and job.announcement is not None:
                raw = announcement_mail.build_test(job.announcement, to_address=job.to_address, now=clock.now())
            else:
                raw = mail.build(
                    job.kind,
                    to_address=job.to_address,
                    to_name=job.to_name,
                    link_key=job.link_key,
                    token_version=job.token_version,
                    now=clock.now(),
                )
        except ValueError as exc:  # an address the email package cannot write: this one fails, the rest go
            results.append((job.outbox_id, OutboxState.FAILED, str(unwritable(exc))))
            continue
        try:
            transport.send(settings.envelope_for(VerpKind.OUTBOX, job.outbox_id), job.to_address, raw)
        except ServerUnavailable as exc:
            # Nobody's fault but the server's: put the rest back untouched for the next tick.
            log.warning("mail server unavailable, %d outbox message(s) wait: %s", len(jobs) - position, redact(str(exc)))
            summary.server_unavailable = True
            _record(session, results, settings=settings, clock=clock, summary=summary)
            _release(session, [j.outbox_id for j in jobs[position:]], str(exc))
            return len(ids), summary
        except SendFailure as exc:
            state = OutboxState.FAILED if exc.permanent else OutboxState.PENDING
            results.append((job.outbox_id, state, str(exc)))
        else:
            results.append((job.outbox_id, OutboxState.SENT, None))
        if settings.time_to_mark(len(results), last_marked):
            _record(session, results, settings=settings, clock=clock, summary=summary)
            results = []
            last_marked = time.monotonic()
    _record(session, results, settings=settings, clock=clock, summary=summary)
    return len(ids), summary


@dataclass(frozen=True)
class _Row:
    """The outbox columns a job needs."""

    id: int
    kind: MailKind
    member_id: int | None
    to_address: str | None
    payload: dict[str, Any] | None


@dataclass(frozen=True)
class _Recipient:
    """The member columns a job needs."""

    link_key: str
    email: str
    name: str
    status: MemberStatus
    token_version: int


def _load_jobs(session: Session, ids: list[int]) -> list[_Job]:
    # Plain columns, not ORM objects: loading two whole entities per row cost more than building the mail.
    rows = session.execute(
        select(
            OutboxMessage.id,
            OutboxMessage.kind,
            OutboxMessage.member_id,
            OutboxMessage.to_address,
            OutboxMessage.payload,
            Member.link_key,
            Member.email,
            Member.name,
            Member.status,
            Member.token_version,
        )
        .outerjoin(Member, Member.id == OutboxMessage.member_id)
        .where(in_ids(session, OutboxMessage.id, ids))
        .order_by(OutboxMessage.id)
    ).all()
    return [
        _job_for(session, _Row(*row[:5]), None if row[5] is None else _Recipient(*row[5:]))
        for row in rows
    ]


def _job_for(session: Session, row: _Row, member: _Recipient | None) -> _Job:
    """Decide the recipient at send time: an erased or departed member gets nothing (S5)."""
    if row.kind is MailKind.TEST:
        announcement_id = (row.payload or {}).get("announcement_id")
        item = session.get(Announcement, announcement_id) if isinstance(announcement_id, int) else None
        if item is None:
            return _Job(row.id, row.kind, None, "", "", 0)
        documents = find_document_links(session, [item.id]).get(item.id, ())
        content = AnnouncementContent(item.id, item.subject, item.body_markdown, item.updated_at, documents)
        return _Job(row.id, row.kind, row.to_address, "", "", 0, content)
    if row.member_id is None:
        return _Job(row.id, row.kind, row.to_address, "", "", 0)
    if member is None or not _still_wanted(row.kind, member):
        return _Job(row.id, row.kind, None, "", "", 0)
    return _Job(row.id, row.kind, member.email, member.name, member.link_key, member.token_version)


def _still_wanted(kind: MailKind, member: _Recipient) -> bool:
    if kind is MailKind.CONFIRM:
        return member.status in (MemberStatus.PENDING, MemberStatus.UNSUBSCRIBED)
    return member.status is MemberStatus.MEMBER


def _record(
    session: Session,
    results: list[tuple[int, OutboxState, str | None]],
    *,
    settings: EngineSettings,
    clock: Clock,
    summary: OutboxSummary,
) -> None:
    if not results:
        return
    now = clock.now()
    with transaction(session):
        sent_ids = [oid for oid, state, _ in results if state is OutboxState.SENT]
        if sent_ids:
            session.execute(
                update(OutboxMessage)
                .where(in_ids(session, OutboxMessage.id, sent_ids))
                .values(state=OutboxState.SENT, sent_at=now, attempts=OutboxMessage.attempts + 1, last_error=None)
                .execution_options(synchronize_session=False)
            )
            summary.sent += len(sent_ids)
        for outbox_id, state, error in results:
            if state is OutboxState.SENT:
                continue
            row = session.get(OutboxMessage, outbox_id)
            if row is None:
                continue
            row.last_error = (error or "")[:500]
            if state is OutboxState.DROPPED:
                row.state = OutboxState.DROPPED
                continue
            row.attempts += 1
            if state is OutboxState.PENDING and row.attempts < settings.max_attempts:
                row.state, row.next_attempt_at = OutboxState.PENDING, now + settings.backoff(row.attempts)
                summary.retrying += 1
                log.info("outbox %d: will retry (attempt %d): %s", outbox_id, row.attempts, redact(error or ""))
            else:
                row.state = OutboxState.FAILED
                summary.failed += 1
                log.warning("outbox %d: failed after %d attempt(s): %s", outbox_id, row.attempts, redact(error or ""))
    results.clear()


def _release(session: Session, ids: list[int], error: str) -> None:
    with transaction(session):
        session.execute(
            update(OutboxMessage)
            .where(in_ids(session, OutboxMessage.id, ids))
            .values(state=OutboxState.PENDING, claimed_at=None, claimed_by=None, last_error=error[:500])
            .execution_options(synchronize_session=False)
        )
