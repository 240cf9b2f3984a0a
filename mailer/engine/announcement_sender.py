"""Announcements through the engine: start due ones, send claimed deliveries, finish (S1, S3-S5).

The delivery rows are the queue. Claims commit before any SMTP; results are marked in
small transactions after the server answered; a crash leaves claims that expire and
are taken again (at-least-once, duplicates bounded by the claimed batch)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Integer, Select, and_, exists, func, insert, literal, select, text, update
from sqlalchemy.orm import Session

from .. import bounces
from ..announcement_mail import AnnouncementContent, AnnouncementMail
from ..announcement_states import Action, attempt
from ..announcements import audience
from ..clock import Clock
from ..documents import find_document_links
from ..logsafe import redact
from ..models import (
    Announcement,
    AnnouncementState,
    BounceKind,
    Delivery,
    DeliveryState,
    Group,
    Member,
    MemberStatus,
    UTCDateTime,
    _enum,
    member_group,
)
from ..transaction import transaction
from ..verp import VerpKind
from .claims import claim_due, release_expired
from .idsets import in_ids
from .settings import EngineSettings
from .transport import Outgoing, SendFailure, ServerUnavailable, SmtpTransport, unwritable

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class _Recipient:
    delivery_id: int
    announcement_id: int
    member_id: int | None
    link_key: str
    email: str
    name: str
    token_version: int
    wanted: bool
    group_names: tuple[str, ...] = ()


@dataclass
class DeliverySummary:
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    skipped: int = 0
    server_unavailable: bool = False
    started: list[int] = field(default_factory=list)
    held: list[int] = field(default_factory=list)
    finished: list[int] = field(default_factory=list)

    def add(self, other: DeliverySummary) -> None:
        self.sent += other.sent
        self.retrying += other.retrying
        self.failed += other.failed
        self.skipped += other.skipped
        self.server_unavailable = self.server_unavailable or other.server_unavailable


def start_due_announcements(
    session: Session, *, clock: Clock, hold_after: timedelta, summary: DeliverySummary
) -> None:
    """Scheduled -> sending, with one delivery row per confirmed member in the audience, made now.

    One set-based INSERT ... SELECT, so memory does not grow with the list (S7). The state
    change is a conditional UPDATE, so two workers never both start the same announcement.
    One whose time passed more than `hold_after` ago is held for an admin instead."""
    now = clock.now()
    due_ids = list(
        session.scalars(
            select(Announcement.id).where(
                Announcement.state == AnnouncementState.SCHEDULED, Announcement.scheduled_at <= now
            )
        )
    )
    session.rollback()
    for announcement_id in due_ids:
        with transaction(session):
            announcement = session.get(Announcement, announcement_id)
            if announcement is None or announcement.scheduled_at is None:
                continue
            late = announcement.scheduled_at < now - hold_after
            action = Action.HOLD if late else Action.START
            if not attempt(session, announcement_id, action, clock=clock, hold_after=hold_after):
                continue
            if late:
                log.warning("announcement %d: held, its time passed more than %s ago", announcement_id, hold_after)
                summary.held.append(announcement_id)
                continue
            count = _create_deliveries(session, announcement, now)
            session.execute(
                update(Announcement)
                .where(Announcement.id == announcement_id)
                .values(recipient_count=count)
                .execution_options(synchronize_session=False)
            )
            log.info("announcement %d: sending to %d member(s)", announcement_id, count)
            summary.started.append(announcement_id)


def _create_deliveries(session: Session, announcement: Announcement, now: datetime) -> int:
    members = audience([g.id for g in announcement.groups], announcement.only_without_social_media).subquery()
    rows = select(
        literal(announcement.id, Integer),
        members.c.id,
        literal(DeliveryState.PENDING, _enum(DeliveryState)),
        literal(0, Integer),
        literal(now, UTCDateTime()),
    )
    result = session.execute(
        insert(Delivery).from_select(
            ["announcement_id", "member_id", "state", "attempts", "next_attempt_at"], rows
        )
    )
    if session.get_bind().dialect.name == "postgresql":
        # Thousands of rows arrive at once (and an import may just have added the members); until
        # autovacuum samples them, a minute or more later, the planner thinks the tables are tiny
        # and reads all of them for every batch: O(n^2) per send. A sample costs milliseconds.
        session.execute(text(f"ANALYZE {Delivery.__tablename__}, {Member.__tablename__}"))
    if result.rowcount is not None and result.rowcount >= 0:
        return result.rowcount
    return session.scalar(select(func.count()).where(Delivery.announcement_id == announcement.id)) or 0


def _sending_ids() -> Select[tuple[int]]:
    """The announcements being sent: only their deliveries are claimed, or released after a crash."""
    return select(Announcement.id).where(Announcement.state == AnnouncementState.SENDING)


def release_expired_deliveries(session: Session, *, settings: EngineSettings, clock: Clock) -> None:
    """Deliveries claimed by a worker that stopped (its lease ran out) go back in the queue (S3)."""
    sending = _sending_ids()
    with transaction(session):
        released = release_expired(
            session, Delivery, pending=DeliveryState.PENDING, sending=DeliveryState.SENDING, now=clock.now(),
            lease=settings.lease, scope=Delivery.announcement_id.in_(sending),
        )
    if released:
        log.warning("%d delivery(ies) claimed longer ago than the lease are sent again", released)


def claim_deliveries(session: Session, *, settings: EngineSettings, clock: Clock) -> list[int]:
    """Claim up to a batch of due deliveries, announcement by announcement in the order they started,
    and commit: each claim is a range of the queue index for one announcement (engine/claims.py)."""
    sending = _sending_ids()
    ids: list[int] = []
    with transaction(session):
        for announcement_id in session.scalars(sending.order_by(Announcement.started_at, Announcement.id)).all():
            ids += claim_due(
                session,
                Delivery,
                pending=DeliveryState.PENDING,
                sending=DeliveryState.SENDING,
                worker_id=settings.worker_id,
                now=clock.now(),
                limit=settings.batch_size - len(ids),
                # Still sending when the claim runs (an admin may pause in between), in the same statement.
                scope=and_(Delivery.announcement_id == announcement_id, Delivery.announcement_id.in_(sending)),
            )
            if len(ids) >= settings.batch_size:
                break
    return ids


def send_delivery_batch(
    session: Session,
    transport: SmtpTransport,
    mail: AnnouncementMail,
    *,
    settings: EngineSettings,
    clock: Clock,
) -> tuple[int, DeliverySummary]:
    """Claim one batch of deliveries of sending announcements, send, record. Returns (claimed, summary)."""
    ids = claim_deliveries(session, settings=settings, clock=clock)
    summary = DeliverySummary()
    if not ids:
        return 0, summary
    started = time.monotonic()
    with transaction(session):
        recipients = _load_recipients(session, ids)
        contents = _load_contents(session, mail, {r.announcement_id for r in recipients})
    results: list[tuple[_Recipient, DeliveryState, SendFailure | None]] = []
    settled: set[int] = set()  # delivery ids with an outcome, written or about to be

    def settle(recipient: _Recipient, state: DeliveryState, failure: SendFailure | None) -> None:
        results.append((recipient, state, failure))
        settled.add(recipient.delivery_id)

    def messages() -> Iterator[Outgoing]:
        """The batch's messages, built as the connection is ready for each; rows not to send are settled here."""
        last_check = time.monotonic()
        gone: set[int] = set()
        paused: set[int] = set()
        for position, recipient in enumerate(recipients):
            if time.monotonic() - last_check >= settings.recheck_seconds:
                # Someone may have left, or an admin paused, since the batch was read (S5); the answer
                # holds for the rest of the batch until the next look.
                gone, paused = _recheck(session, recipients[position:])
                last_check = time.monotonic()
            if recipient.announcement_id in paused:
                settle(recipient, DeliveryState.PENDING, None)
                continue
            if not recipient.wanted or recipient.delivery_id in gone:
                settle(recipient, DeliveryState.SKIPPED, None)
                continue
            try:
                raw = mail.build_for_member(
                    contents[recipient.announcement_id],
                    link_key=recipient.link_key,
                    token_version=recipient.token_version,
                    to_address=recipient.email,
                    to_name=recipient.name,
                    now=clock.now(),
                    group_names=recipient.group_names,
                )
            except ValueError as exc:  # an address the email package cannot write: this one fails, the rest go
                settle(recipient, DeliveryState.FAILED, unwritable(exc))
                continue
            yield Outgoing(recipient, settings.envelope_for(VerpKind.DELIVERY, recipient.delivery_id), recipient.email, raw)

    last_marked = time.monotonic()
    try:
        with closing(transport.send_all(messages())) as outcomes:
            for recipient, failure in outcomes:
                if failure is None:
                    settle(recipient, DeliveryState.SENT, None)
                else:
                    settle(recipient, DeliveryState.FAILED if failure.permanent else DeliveryState.PENDING, failure)
                if settings.time_to_mark(len(results), last_marked):
                    _record(session, results, settings=settings, clock=clock, summary=summary)
                    last_marked = time.monotonic()
    except ServerUnavailable as exc:
        waiting = [r.delivery_id for r in recipients if r.delivery_id not in settled]
        log.warning("mail server unavailable, %d delivery(ies) wait: %s", len(waiting), redact(str(exc)))
        summary.server_unavailable = True
        _record(session, results, settings=settings, clock=clock, summary=summary)
        _release(session, waiting, str(exc))
        return len(ids), summary
    _record(session, results, settings=settings, clock=clock, summary=summary)
    elapsed = max(time.monotonic() - started, 1e-6)
    log.info(
        "deliveries batch: %d sent, %d failed, %d retrying, %d skipped in %.2fs (%.0f msg/s)",
        summary.sent, summary.failed, summary.retrying, summary.skipped, elapsed, summary.sent / elapsed,
    )
    return len(ids), summary


def finish_announcements(session: Session, *, clock: Clock, summary: DeliverySummary) -> None:
    """Sending -> sent once no delivery is left to send; re-read here, as an admin may have paused."""
    open_rows = exists().where(
        Delivery.announcement_id == Announcement.id,
        Delivery.state.in_([DeliveryState.PENDING, DeliveryState.SENDING]),
    )
    with transaction(session):
        done = list(
            session.scalars(select(Announcement.id).where(Announcement.state == AnnouncementState.SENDING, ~open_rows))
        )
        for announcement_id in done:
            if attempt(session, announcement_id, Action.FINISH, clock=clock):
                summary.finished.append(announcement_id)
                log.info("announcement %d: sent", announcement_id)


def _load_recipients(session: Session, ids: list[int]) -> list[_Recipient]:
    rows = session.execute(
        select(
            Delivery.id, Delivery.announcement_id, Member.id, Member.link_key, Member.email, Member.name,
            Member.token_version, Member.status,
        )
        .outerjoin(Member, Member.id == Delivery.member_id)
        .where(in_ids(session, Delivery.id, ids))
        .order_by(Delivery.id)
    ).all()
    groups = _load_group_names(session, {row[2] for row in rows if row[2] is not None})
    return [
        _Recipient(
            delivery_id=d_id, announcement_id=a_id, member_id=m_id, link_key=key or "", email=email or "", name=name or "",
            token_version=version or 0, wanted=status is MemberStatus.MEMBER, group_names=groups.get(m_id, ()),
        )
        for d_id, a_id, m_id, key, email, name, version, status in rows
    ]


def _load_group_names(session: Session, member_ids: set[int]) -> dict[int, tuple[str, ...]]:
    """Each member's group names for {{ groups }} (issue 9): one query for the whole batch."""
    if not member_ids:
        return {}
    found: dict[int, list[str]] = {}
    rows = session.execute(
        select(member_group.c.member_id, Group.name)
        .join(Group, Group.id == member_group.c.group_id)
        .where(in_ids(session, member_group.c.member_id, member_ids))
        .order_by(member_group.c.member_id, Group.position, Group.id)
    )
    for member_id, name in rows:
        found.setdefault(member_id, []).append(name)
    return {member_id: tuple(names) for member_id, names in found.items()}


def _load_contents(session: Session, mail: AnnouncementMail, announcement_ids: set[int]) -> dict[int, AnnouncementContent]:
    """Each announcement's content; one small query when the renderer already read it this tick."""
    versions = dict(session.execute(
        select(Announcement.id, Announcement.updated_at).where(in_ids(session, Announcement.id, announcement_ids))
    ).all())
    contents = {a_id: mail.known_content(a_id, updated_at) for a_id, updated_at in versions.items()}
    missing = {a_id for a_id, content in contents.items() if content is None}
    if missing:
        rows = session.execute(
            select(Announcement.id, Announcement.subject, Announcement.body_markdown, Announcement.updated_at).where(
                Announcement.id.in_(missing)
            )
        ).all()
        documents = find_document_links(session, missing)
        for row in rows:
            content = AnnouncementContent(*row, documents=documents.get(row[0], ()))
            mail.remember_content(content)
            contents[content.id] = content
    return {a_id: content for a_id, content in contents.items() if content is not None}


def _recheck(session: Session, rest: list[_Recipient]) -> tuple[set[int], set[int]]:
    """One query for the rest of the batch: deliveries whose member left, announcements paused."""
    member_ids = [r.member_id for r in rest if r.member_id is not None]
    with transaction(session):
        still = set(
            session.scalars(select(Member.id).where(in_ids(session, Member.id, member_ids), Member.status == MemberStatus.MEMBER))
        )
        paused = set(
            session.scalars(
                select(Announcement.id).where(
                    Announcement.id.in_({r.announcement_id for r in rest}),
                    Announcement.state != AnnouncementState.SENDING,
                )
            )
        )
    return {r.delivery_id for r in rest if r.member_id not in still}, paused


def _record(
    session: Session,
    results: list[tuple[_Recipient, DeliveryState, SendFailure | None]],
    *,
    settings: EngineSettings,
    clock: Clock,
    summary: DeliverySummary,
) -> None:
    if not results:
        return
    now = clock.now()
    with transaction(session):
        by_state: dict[DeliveryState, list[int]] = {}
        for recipient, state, failure in results:
            if failure is None:
                by_state.setdefault(state, []).append(recipient.delivery_id)
        for state, ids in by_state.items():
            values: dict[str, object] = {"state": state}
            if state is DeliveryState.SENT:
                values.update(sent_at=now, attempts=Delivery.attempts + 1, last_error=None)
                summary.sent += len(ids)
            elif state is DeliveryState.SKIPPED:
                values.update(last_error="no longer a member when its turn came")
                summary.skipped += len(ids)
            # PENDING without failure: handed back because the announcement was paused.
            session.execute(
                update(Delivery).where(in_ids(session, Delivery.id, ids)).values(**values).execution_options(synchronize_session=False)
            )
        for recipient, state, failure in results:
            if failure is None:
                continue
            delivery = session.get(Delivery, recipient.delivery_id)
            if delivery is None:
                continue
            delivery.attempts += 1
            delivery.last_error = str(failure)[:500]
            if failure.permanent:
                delivery.state = DeliveryState.FAILED
                summary.failed += 1
                _count_bounce(
                    session, recipient.member_id, delivery_id=delivery.id, reason=str(failure), settings=settings,
                    clock=clock,
                )
            elif delivery.attempts < settings.max_attempts:
                delivery.state, delivery.next_attempt_at = DeliveryState.PENDING, now + settings.backoff(delivery.attempts)
                summary.retrying += 1
            else:
                delivery.state = DeliveryState.FAILED
                summary.failed += 1
    results.clear()


def _count_bounce(
    session: Session, member_id: int | None, *, delivery_id: int, reason: str, settings: EngineSettings, clock: Clock
) -> None:
    """A permanent refusal during the SMTP conversation: the same rule as a later DSN (S4, mailer.bounces)."""
    bounces.record_bounce(
        session, member_id, BounceKind.PERMANENT, reason=reason, source_key=bounces.bounce_source_key(BounceKind.PERMANENT, VerpKind.DELIVERY, delivery_id),
        delivery_id=delivery_id, policy=settings.bounce_policy(), clock=clock,
    )


def _release(session: Session, ids: list[int], error: str) -> None:
    with transaction(session):
        session.execute(
            update(Delivery)
            .where(in_ids(session, Delivery.id, ids), Delivery.state == DeliveryState.SENDING)
            .values(state=DeliveryState.PENDING, claimed_at=None, claimed_by=None, last_error=error[:500])
            .execution_options(synchronize_session=False)
        )


__all__ = [
    "DeliverySummary", "claim_deliveries", "finish_announcements", "release_expired_deliveries", "send_delivery_batch",
    "start_due_announcements",
]
