"""Members admin (J6): find, count and look after members on an admin's behalf.

Plain functions over a session, ids and a clock, like mailer.members.membership: they may
flush but never commit, and raise domain exceptions. Actions an admin takes for a
member leave the same evidence as the member's own (C1), marked as an admin's."""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import case, exists, func, or_, select, update
from sqlalchemy.orm import Session, selectinload

from mailer.clock import Clock
from mailer.errors import InvalidInput, NotPending, Suppressed
from mailer.members import consent, rights
from mailer.members.consent import Evidence
from mailer.members.membership import MembershipPolicy, queue_link_mail
from mailer.models import (
    Admin,
    Announcement,
    AnnouncementState,
    ConsentAction,
    ConsentEvent,
    ConsentMethod,
    Delivery,
    DeliveryState,
    Group,
    MailKind,
    Member,
    MemberStatus,
    OutboxMessage,
    OutboxState,
    member_group,
)

log = logging.getLogger(__name__)

MAX_SEARCH_LENGTH = 320
MAX_PAGE_SIZE = 500
RECENT_SIGNUP_DAYS = 7


@dataclass(frozen=True)
class MemberPage:
    """One page of the list, newest first; `next_after_id` continues it (None: this is the last page)."""

    members: list[Member]
    next_after_id: int | None


@dataclass(frozen=True)
class GroupCount:
    group_id: int
    name: str
    total: int
    confirmed: int


def list_members(
    session: Session,
    *,
    search: str = "",
    status: MemberStatus | None = None,
    group_id: int | None = None,
    after_id: int | None = None,
    limit: int = 50,
) -> MemberPage:
    """Members matching the filters, newest first, one page at a time (J6).

    Keyset pagination on the primary key: a page costs the same at row 50,000 as at
    row 1, and members joining meanwhile do not shift later pages. `after_id` is the
    last id of the previous page. Search matches part of the name or the address,
    ignoring case. Raises InvalidInput for an oversized search or a bad page size."""
    search = (search or "").strip()
    if len(search) > MAX_SEARCH_LENGTH:
        raise InvalidInput(f"Search for {MAX_SEARCH_LENGTH} characters or fewer.", field="q")
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise InvalidInput(f"A page shows between 1 and {MAX_PAGE_SIZE} members.")
    query = select(Member).options(selectinload(Member.groups)).order_by(Member.id.desc()).limit(limit + 1)
    if search:
        pattern = "%" + _escape_like(search.lower()) + "%"
        query = query.where(
            or_(Member.email_key.like(pattern, escape="\\"), func.lower(Member.name).like(pattern, escape="\\"))
        )
    if status is not None:
        query = query.where(Member.status == status)
    if group_id is not None:
        query = query.where(
            exists().where(member_group.c.member_id == Member.id, member_group.c.group_id == group_id)
        )
    if after_id is not None:
        query = query.where(Member.id < after_id)
    members = list(session.scalars(query))
    has_more = len(members) > limit
    members = members[:limit]
    return MemberPage(members=members, next_after_id=members[-1].id if has_more and members else None)


def count_by_status(session: Session) -> dict[MemberStatus, int]:
    """How many members are in each state; every state present, zero when empty."""
    found = dict(session.execute(select(Member.status, func.count()).group_by(Member.status)).all())
    return {status: int(found.get(status, 0)) for status in MemberStatus}


def count_by_group(session: Session) -> list[GroupCount]:
    """For each group, in the join form's order: everyone in it, and how many are confirmed members."""
    confirmed = func.count(case((Member.status == MemberStatus.MEMBER, 1)))
    rows = session.execute(
        select(Group.id, Group.name, func.count(Member.id), confirmed)
        .outerjoin(member_group, member_group.c.group_id == Group.id)
        .outerjoin(Member, Member.id == member_group.c.member_id)
        .group_by(Group.id, Group.name, Group.position)
        .order_by(Group.position, Group.id)
    ).all()
    return [GroupCount(group_id, name, int(total), int(ok or 0)) for group_id, name, total, ok in rows]


def find_member(session: Session, member_id: int) -> Member:
    """The member with this id. Raises InvalidInput when there is none (erased, or never was)."""
    member = session.get(Member, member_id)
    if member is None:
        raise InvalidInput("There is no member with that number. They may have been erased.")
    return member


@dataclass(frozen=True)
class DeliveryLine:
    announcement_id: int
    subject: str
    state: DeliveryState
    attempts: int
    sent_at: datetime | None
    last_error: str | None


@dataclass(frozen=True)
class MemberHistory:
    """What the member detail page shows besides the profile: evidence and mail, oldest first."""

    consent_events: list[ConsentEvent]
    deliveries: list[DeliveryLine]
    emails: list[OutboxMessage]
    admin_emails: dict[int, str]  # admins named in the consent history


def find_member_history(session: Session, member_id: int) -> MemberHistory:
    """The full consent history with the wording shown (C1), every announcement and its outcome, and system mail."""
    events = list(
        session.scalars(
            select(ConsentEvent)
            .options(selectinload(ConsentEvent.wording))
            .where(ConsentEvent.member_id == member_id)
            .order_by(ConsentEvent.id)
        )
    )
    deliveries = [
        DeliveryLine(*row)
        for row in session.execute(
            select(
                Announcement.id, Announcement.subject, Delivery.state, Delivery.attempts, Delivery.sent_at,
                Delivery.last_error,
            )
            .join(Announcement, Announcement.id == Delivery.announcement_id)
            .where(Delivery.member_id == member_id)
            .order_by(Delivery.id)
        ).all()
    ]
    emails = list(
        session.scalars(select(OutboxMessage).where(OutboxMessage.member_id == member_id).order_by(OutboxMessage.id))
    )
    admin_ids = {
        value
        for e in events
        for name in ("admin_id", "imported_by_admin_id")
        if isinstance(value := (e.detail or {}).get(name), int)
    } | {e.admin_id for e in events if e.admin_id is not None}
    admin_emails = (
        dict(session.execute(select(Admin.id, Admin.email).where(Admin.id.in_(admin_ids))).all()) if admin_ids else {}
    )
    return MemberHistory(consent_events=events, deliveries=deliveries, emails=emails, admin_emails=admin_emails)


def unsubscribe_on_behalf(session: Session, member_id: int, admin_id: int, *, clock: Clock) -> tuple[Member, bool]:
    """Unsubscribe a member because they asked an admin (by phone, at a meeting); safe to repeat.

    Recorded like their own withdrawal (C1) with method admin and the admin's id, and any
    confirmation request still waiting in the outbox is dropped: someone who said no must
    not get a 'please confirm' afterwards. Returns (member, newly_unsubscribed).
    Raises InvalidInput when there is no such member."""
    member = find_member(session, member_id)
    if member.status is MemberStatus.UNSUBSCRIBED:
        return member, False
    now = clock.now()
    previous = member.status
    member.status, member.unsubscribed_at, member.updated_at = MemberStatus.UNSUBSCRIBED, now, now
    consent.record_consent(
        session,
        member,
        ConsentAction.WITHDRAWN,
        Evidence(method=ConsentMethod.ADMIN),
        clock=clock,
        detail={"admin_id": admin_id, "status_before": previous.value},
    )
    session.execute(
        update(OutboxMessage)
        .where(
            OutboxMessage.member_id == member.id,
            OutboxMessage.state == OutboxState.PENDING,
            OutboxMessage.kind.in_(
                [MailKind.CONFIRM, MailKind.CONFIRM_REMINDER, MailKind.WELCOME, MailKind.ALREADY_MEMBER]
            ),
        )
        .values(state=OutboxState.DROPPED, last_error=f"unsubscribed by admin {admin_id}")
        .execution_options(synchronize_session=False)
    )
    log.info("admin %d: unsubscribed member %d on their behalf", admin_id, member.id)
    return member, True


class ResendOutcome(enum.StrEnum):
    QUEUED = "queued"
    THROTTLED = "throttled"  # one went out less than the confirmation interval ago


def resend_confirmation_by_admin(
    session: Session, member_id: int, admin_id: int, *, policy: MembershipPolicy, clock: Clock
) -> ResendOutcome:
    """Send a pending member their confirmation request again, when they say it never came.

    The same rules as the join form: pending members only, never a suppressed address,
    at most one confirmation mail per address per interval (so an admin's clicks cannot
    flood someone). Raises InvalidInput for no such member, NotPending when they are not
    waiting to confirm, Suppressed when the address must not be mailed."""
    member = find_member(session, member_id)
    if member.status is not MemberStatus.PENDING:
        raise NotPending("Only members who are waiting to confirm can be sent the confirmation email.")
    if consent.is_suppressed(session, policy.suppression_key, member.email_key):
        raise Suppressed("This address is on the do-not-mail list, so no confirmation email can be sent.")
    if not queue_link_mail(session, member, MailKind.CONFIRM, policy=policy, clock=clock):
        return ResendOutcome.THROTTLED
    log.info("admin %d: queued a confirmation email for member %d", admin_id, member.id)
    return ResendOutcome.QUEUED


def next_confirmation_allowed_at(member: Member, policy: MembershipPolicy) -> datetime | None:
    """When the interval lets the next confirmation mail go (None: it may go now or never went)."""
    last = member.last_confirmation_sent_at
    return None if last is None else last + policy.confirmation_interval


def erase_on_behalf(session: Session, member_id: int, admin_id: int, *, suppression_key: bytes, clock: Clock) -> None:
    """Erase a member who asked an admin to (C3): the same erasure as their own, via rights.erase_member.

    Their consent history goes with them, so the only trace of who did it is the log line.
    Raises InvalidInput when there is no such member."""
    member = find_member(session, member_id)
    rights.erase_member(session, member, suppression_key=suppression_key, clock=clock)
    log.info("admin %d: erased member %d", admin_id, member_id)


# --- dashboard ------------------------------------------------------------------


@dataclass(frozen=True)
class LastSend:
    announcement_id: int
    subject: str
    state: AnnouncementState
    started_at: datetime | None
    finished_at: datetime | None
    sent: int
    failed: int
    waiting: int
    skipped: int


@dataclass(frozen=True)
class OutboxHealth:
    """Transactional mail: what is due and not yet sent, and how long the oldest has waited."""

    due: int
    later: int  # waiting for their time: retries and spread-out import confirmations
    failed: int
    oldest_due_at: datetime | None
    oldest_due_age: timedelta | None


@dataclass(frozen=True)
class Dashboard:
    by_status: dict[MemberStatus, int]
    recent_signups: int
    recent_days: int
    next_scheduled: Announcement | None
    last_send: LastSend | None
    outbox: OutboxHealth


def find_dashboard(session: Session, *, clock: Clock) -> Dashboard:
    """The figures an admin checks first: who is on the list, what goes next, did the last send and mail work."""
    now = clock.now()
    recent = session.scalar(
        select(func.count()).select_from(Member).where(Member.created_at >= now - timedelta(days=RECENT_SIGNUP_DAYS))
    )
    next_scheduled = session.scalars(
        select(Announcement)
        .where(Announcement.state == AnnouncementState.SCHEDULED)
        .order_by(Announcement.scheduled_at, Announcement.id)
        .limit(1)
    ).first()
    return Dashboard(
        by_status=count_by_status(session),
        recent_signups=int(recent or 0),
        recent_days=RECENT_SIGNUP_DAYS,
        next_scheduled=next_scheduled,
        last_send=_last_send(session),
        outbox=_outbox_health(session, now),
    )


def _last_send(session: Session) -> LastSend | None:
    item = session.scalars(
        select(Announcement)
        .where(
            Announcement.state.in_([AnnouncementState.SENDING, AnnouncementState.PAUSED, AnnouncementState.SENT]),
            Announcement.started_at.is_not(None),
        )
        .order_by(Announcement.started_at.desc(), Announcement.id.desc())
        .limit(1)
    ).first()
    if item is None:
        return None
    states = dict(
        session.execute(
            select(Delivery.state, func.count()).where(Delivery.announcement_id == item.id).group_by(Delivery.state)
        ).all()
    )
    return LastSend(
        announcement_id=item.id,
        subject=item.subject,
        state=item.state,
        started_at=item.started_at,
        finished_at=item.finished_at,
        sent=states.get(DeliveryState.SENT, 0),
        failed=states.get(DeliveryState.FAILED, 0),
        waiting=states.get(DeliveryState.PENDING, 0) + states.get(DeliveryState.SENDING, 0),
        skipped=states.get(DeliveryState.SKIPPED, 0),
    )


def _outbox_health(session: Session, now: datetime) -> OutboxHealth:
    is_due = or_(
        OutboxMessage.state == OutboxState.SENDING,
        (OutboxMessage.state == OutboxState.PENDING) & (OutboxMessage.next_attempt_at <= now),
    )
    due, oldest = session.execute(
        select(func.count(), func.min(OutboxMessage.created_at)).where(is_due)
    ).one()
    later = session.scalar(
        select(func.count()).where(OutboxMessage.state == OutboxState.PENDING, OutboxMessage.next_attempt_at > now)
    )
    failed = session.scalar(select(func.count()).where(OutboxMessage.state == OutboxState.FAILED))
    return OutboxHealth(
        due=int(due or 0),
        later=int(later or 0),
        failed=int(failed or 0),
        oldest_due_at=oldest,
        oldest_due_age=(now - oldest) if oldest else None,
    )


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
