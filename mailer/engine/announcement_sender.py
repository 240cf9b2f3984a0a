"""Announcements through the engine: start due ones, send claimed deliveries, finish (S1, S3-S5).

The delivery rows are the queue, a kind of queued mail that engine/queue.py sends: claims commit
before any SMTP; results are marked in small transactions after the server answered; a crash
leaves claims that expire and are taken again (at-least-once, duplicates bounded by the claimed
batch). This module says how deliveries are claimed and built, which are skipped or handed back
when a member left or an admin paused (S5), and that a refusal counts as a bounce (S4)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, Integer, Select, and_, exists, func, insert, literal, select, text, update
from sqlalchemy.orm import Session

from mailer.announcements.documents import find_document_links
from mailer.announcements.lifecycle import audience
from mailer.announcements.states import Action, attempt
from mailer.bounces import records as bounces
from mailer.clock import Clock
from mailer.engine.idsets import in_ids
from mailer.engine.queue import QueueKind, QueueSummary, SetAside, States
from mailer.engine.settings import EngineSettings
from mailer.engine.transport import SendFailure
from mailer.mail.announcement import AnnouncementContent, AnnouncementMail
from mailer.mail.verp import VerpKind
from mailer.models import (
    Announcement,
    AnnouncementState,
    BounceKind,
    Delivery,
    DeliveryState,
    Group,
    Member,
    MemberStatus,
    UTCDateTime,
    enum_column,
    member_group,
)
from mailer.transaction import transaction

log = logging.getLogger(__name__)

_LEFT = SetAside(DeliveryState.SKIPPED, "no longer a member when its turn came")
_PAUSED = SetAside(DeliveryState.PENDING)  # handed back as it was: it goes when the announcement is resumed


@dataclass(frozen=True)
class _Recipient:
    id: int  # the delivery's
    announcement_id: int
    content: AnnouncementContent
    member_id: int | None
    link_key: str
    address: str
    name: str
    token_version: int
    wanted: bool
    group_names: tuple[str, ...] = ()


@dataclass
class DeliverySummary(QueueSummary):
    started: list[int] = field(default_factory=list)
    held: list[int] = field(default_factory=list)
    finished: list[int] = field(default_factory=list)

    @property
    def skipped(self) -> int:
        return self.set_aside[DeliveryState.SKIPPED]


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
        literal(DeliveryState.PENDING, enum_column(DeliveryState)),
        literal(0, Integer),
        literal(now, UTCDateTime()),
    )
    result = cast("CursorResult[Any]", session.execute(  # DML runs on a cursor: rowcount is there
        insert(Delivery).from_select(
            ["announcement_id", "member_id", "state", "attempts", "next_attempt_at"], rows
        )
    ))
    if session.get_bind().dialect.name == "postgresql":
        # Thousands of rows arrive at once (and an import may just have added the members); until
        # autovacuum samples them, a minute or more later, the planner thinks the tables are tiny
        # and reads all of them for every batch: O(n^2) per send. A sample costs milliseconds.
        session.execute(text(f"ANALYZE {Delivery.__tablename__}, {Member.__tablename__}"))
    if result.rowcount is not None and result.rowcount >= 0:
        return result.rowcount
    return session.scalar(select(func.count()).where(Delivery.announcement_id == announcement.id)) or 0


def _sending_ids() -> Select[int]:
    """The announcements being sent: only their deliveries are claimed, or released after a crash."""
    return select(Announcement.id).where(Announcement.state == AnnouncementState.SENDING)


class DeliveryQueue(QueueKind[_Recipient]):
    """Announcement deliveries, one row per member, claimed announcement by announcement."""

    model = Delivery
    states = States.of(DeliveryState)
    verp = VerpKind.DELIVERY
    noun = "delivery(ies)"
    departed = _LEFT

    def __init__(self, mail: AnnouncementMail) -> None:
        self.mail = mail

    @classmethod
    def claim(cls, session: Session, *, settings: EngineSettings, clock: Clock) -> list[int]:
        """Claim up to a batch of due deliveries, announcement by announcement in the order they started,
        and commit: each claim is a range of the queue index for one announcement (engine/claims.py)."""
        sending = _sending_ids()
        ids: list[int] = []
        with transaction(session):
            for announcement_id in session.scalars(sending.order_by(Announcement.started_at, Announcement.id)).all():
                ids += cls.claim_rows(
                    session, settings=settings, clock=clock, limit=settings.batch_size - len(ids),
                    # Still sending when the claim runs (an admin may pause in between), in the same statement.
                    scope=and_(Delivery.announcement_id == announcement_id, Delivery.announcement_id.in_(sending)),
                )
                if len(ids) >= settings.batch_size:
                    break
        return ids

    def load(self, session: Session, ids: list[int]) -> list[_Recipient]:
        return _load_recipients(session, self.mail, ids)

    @classmethod
    def lease_scope(cls) -> Any:
        return Delivery.announcement_id.in_(_sending_ids())

    def set_aside(self, item: _Recipient) -> SetAside | None:
        return None if item.wanted else _LEFT

    def watched_member(self, item: _Recipient) -> int | None:
        return item.member_id

    def recheck(self, session: Session, rest: Sequence[_Recipient]) -> Mapping[int, SetAside]:
        """Someone may have left, or an admin paused, since the batch was read (S5)."""
        return _recheck(session, rest)

    def build(self, item: _Recipient, *, now: datetime) -> bytes:
        return self.mail.build_for_member(item.content, link_key=item.link_key, token_version=item.token_version,
                                          to_address=item.address, to_name=item.name, now=now,
                                          group_names=item.group_names, delivery_id=item.id)

    def dispose(
        self, session: Session, item: _Recipient, failure: SendFailure, *, attempts: int, settings: EngineSettings,
        clock: Clock,
    ) -> bool:
        """The shared rule; a permanent refusal during the SMTP conversation also counts as a bounce,
        by the same rule as a later DSN (S4, mailer.bounces.records)."""
        if failure.permanent:
            bounces.record_bounce(
                session, item.member_id, BounceKind.PERMANENT, reason=str(failure),
                source_key=bounces.bounce_source_key(BounceKind.PERMANENT, VerpKind.DELIVERY, item.id),
                delivery_id=item.id, policy=settings.bounce_policy(), clock=clock,
            )
        return super().dispose(session, item, failure, attempts=attempts, settings=settings, clock=clock)


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


def _load_recipients(session: Session, mail: AnnouncementMail, ids: list[int]) -> list[_Recipient]:
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
    contents = _load_contents(session, mail, {row[1] for row in rows})
    return [
        _Recipient(
            id=d_id, announcement_id=a_id, content=contents[a_id], member_id=m_id, link_key=key or "",
            address=email or "", name=name or "", token_version=version or 0, wanted=status is MemberStatus.MEMBER,
            group_names=groups.get(m_id, ()),
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


def _load_contents(
    session: Session, mail: AnnouncementMail, announcement_ids: set[int]
) -> dict[int, AnnouncementContent]:
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


def _recheck(session: Session, rest: Sequence[_Recipient]) -> dict[int, SetAside]:
    """One query for the rest of the batch: deliveries of a paused announcement are handed back,
    those whose member left are skipped."""
    member_ids = [r.member_id for r in rest if r.member_id is not None]
    with transaction(session):
        still = set(
            session.scalars(
                select(Member.id).where(in_ids(session, Member.id, member_ids), Member.status == MemberStatus.MEMBER)
            )
        )
        paused = set(
            session.scalars(
                select(Announcement.id).where(
                    Announcement.id.in_({r.announcement_id for r in rest}),
                    Announcement.state != AnnouncementState.SENDING,
                )
            )
        )
    return {
        r.id: _PAUSED if r.announcement_id in paused else _LEFT
        for r in rest if r.announcement_id in paused or r.member_id not in still
    }


__all__ = [
    "DeliveryQueue", "DeliverySummary", "finish_announcements", "start_due_announcements",
]
