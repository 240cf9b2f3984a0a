"""Announcements from draft to sent (J3, S1): editing, audience, scheduling in Europe/London, pause.

Times are stored in UTC; admins think in London time, including on the two days a
year the clocks change, so those times are checked rather than guessed."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Select, exists, func, select
from sqlalchemy.orm import Session, selectinload

from mailer.announcements.states import Action, transition
from mailer.clock import Clock
from mailer.errors import InvalidInput, WrongState
from mailer.mail.personal_fields import check_placeholders
from mailer.models import (
    Announcement,
    AnnouncementState,
    Delivery,
    DeliveryState,
    Group,
    Member,
    MemberStatus,
    SocialMedia,
    member_group,
)
from mailer.text import has_control_characters

LONDON = ZoneInfo("Europe/London")
MAX_SUBJECT_LENGTH = 200
MAX_BODY_LENGTH = 100_000


@dataclass(frozen=True)
class AnnouncementDraft:
    subject: str
    body_markdown: str
    group_ids: list[int] = field(default_factory=list)
    only_without_social_media: bool = False


@dataclass(frozen=True)
class Progress:
    total: int
    sent: int
    pending: int
    failed: int
    skipped: int

    @property
    def done(self) -> int:
        return self.sent + self.failed + self.skipped

    @property
    def percent(self) -> int:
        return 100 if self.total == 0 else int(100 * self.done / self.total)


def create_announcement(
    session: Session, draft: AnnouncementDraft, *, admin_id: int | None, clock: Clock
) -> Announcement:
    """Save a new draft. Raises InvalidInput for an empty or oversized subject or body."""
    subject, body = checked_draft(draft)
    now = clock.now()
    announcement = Announcement(
        subject=subject,
        body_markdown=body,
        only_without_social_media=draft.only_without_social_media,
        state=AnnouncementState.DRAFT,
        created_at=now,
        updated_at=now,
        created_by_id=admin_id,
        is_public=False,
        recipient_count=0,
    )
    announcement.groups = _groups(session, draft.group_ids)
    session.add(announcement)
    session.flush()
    return announcement


def update_announcement(
    session: Session, announcement: Announcement, draft: AnnouncementDraft, *, clock: Clock
) -> None:
    """Edit until sending starts. Raises TransitionRefused once it has started, InvalidInput for bad fields."""
    subject, body = checked_draft(draft)
    groups = _groups(session, draft.group_ids)
    transition(session, announcement.id, Action.EDIT, clock=clock)  # claims the row: a start waits for this edit
    announcement.subject, announcement.body_markdown = subject, body
    announcement.only_without_social_media = draft.only_without_social_media
    announcement.groups = groups


def schedule_announcement(
    session: Session, announcement: Announcement, when: datetime, *, clock: Clock, undo: timedelta = timedelta(0)
) -> datetime:
    """Send at `when` (aware), but never before the undo window ends (V1). Returns the time it is due (UTC).

    Raises InvalidInput for a time in the past, TransitionRefused once started."""
    now = clock.now()
    if when <= now:
        raise InvalidInput("Choose a time in the future.", field="send_time")
    send_at = max(when.astimezone(UTC), now + undo)
    transition(session, announcement.id, Action.SCHEDULE, send_at=send_at, clock=clock)
    return send_at


def send_announcement_now(
    session: Session, announcement: Announcement, *, clock: Clock, undo: timedelta = timedelta(0)
) -> datetime:
    """Due when the undo window ends (V1): the worker starts nothing before, and "Stop, don't send" (unschedule)
    puts it back to a draft until then. Also the way to release a held one. Returns the time it is due (UTC)."""
    send_at = clock.now() + undo
    transition(session, announcement.id, Action.SEND_NOW, send_at=send_at, clock=clock)
    return send_at


def copy_announcement(
    session: Session, announcement: Announcement, *, admin_id: int | None, clock: Clock
) -> Announcement:
    """A new draft with the same subject, message and audience (V3: any announcement, sent or cancelled, can be
    copied). Documents stay with the original; confirmed brackets are copied with the text they belong to."""
    now = clock.now()
    copy = Announcement(
        subject=announcement.subject,
        body_markdown=announcement.body_markdown,
        only_without_social_media=announcement.only_without_social_media,
        state=AnnouncementState.DRAFT,
        created_at=now,
        updated_at=now,
        created_by_id=admin_id,
        is_public=False,
        recipient_count=0,
        meant_brackets=announcement.meant_brackets,
    )
    copy.groups = list(announcement.groups)
    session.add(copy)
    session.flush()
    return copy


def unschedule_announcement(session: Session, announcement: Announcement, *, clock: Clock) -> None:
    """Back to draft, so it can be changed without being sent."""
    transition(session, announcement.id, Action.UNSCHEDULE, clock=clock)


def cancel_announcement(session: Session, announcement: Announcement, *, clock: Clock) -> None:
    """Never to be sent; refused once the worker has started it (J3: pause it instead)."""
    transition(session, announcement.id, Action.CANCEL, clock=clock)


def pause_announcement(session: Session, announcement: Announcement, *, clock: Clock) -> None:
    """Stop handing out deliveries; ones already handed to the mail server still finish."""
    transition(session, announcement.id, Action.PAUSE, clock=clock)


def stop_sending(session: Session, announcement: Announcement, *, clock: Clock) -> int:
    """"Stop this send" (issue 18): it ends as cancelled and the members still waiting never get it; messages
    already handed to the mail server still go. Returns how many will not get it. Refused unless sending or paused
    (one conditional statement: a finish that came first wins)."""
    transition(session, announcement.id, Action.STOP, clock=clock)
    waiting = (Delivery.announcement_id == announcement.id) & (Delivery.state == DeliveryState.PENDING)
    return session.scalar(select(func.count()).where(waiting)) or 0


def resume_announcement(session: Session, announcement: Announcement, *, clock: Clock) -> None:
    transition(session, announcement.id, Action.RESUME, clock=clock)


def publish_announcement(session: Session, announcement: Announcement, public: bool, *, clock: Clock) -> None:
    """Show a sent announcement in the public archive (J7), or take it out again."""
    _require(announcement, (AnnouncementState.SENT,), "Only a sent announcement can be put in the archive.")
    announcement.is_public, announcement.updated_at = public, clock.now()


def audience(group_ids: list[int], only_without_social_media: bool) -> Select[int]:
    """Ids of the confirmed members an announcement reaches right now (J3)."""
    query = select(Member.id).where(Member.status == MemberStatus.MEMBER)
    if group_ids:
        query = query.where(
            exists().where(member_group.c.member_id == Member.id, member_group.c.group_id.in_(group_ids))
        )
    if only_without_social_media:
        query = query.where(Member.social_media == SocialMedia.NO)
    return query


@dataclass(frozen=True)
class SampleMember:
    """A member whose values the preview can show (issue 9: personal fields)."""

    id: int
    name: str
    email: str
    group_names: tuple[str, ...]


def list_sample_members(
    session: Session, group_ids: list[int], only_without_social_media: bool, *, limit: int = 10
) -> list[SampleMember]:
    """A few confirmed members of the audience, oldest first, to preview their copy."""
    ids = audience(group_ids, only_without_social_media).order_by(Member.id).limit(limit)
    members = session.scalars(
        select(Member).where(Member.id.in_(ids)).order_by(Member.id).options(selectinload(Member.groups))
    )
    return [SampleMember(m.id, m.name, m.email, tuple(g.name for g in m.groups)) for m in members]


def count_audience(session: Session, group_ids: list[int], only_without_social_media: bool) -> int:
    return (
        session.scalar(select(func.count()).select_from(audience(group_ids, only_without_social_media).subquery())) or 0
    )


def announcement_progress(session: Session, announcement_id: int) -> Progress:
    rows = dict(
        session.execute(
            select(Delivery.state, func.count())
            .where(Delivery.announcement_id == announcement_id)
            .group_by(Delivery.state)
        ).all()
    )
    pending = rows.get(DeliveryState.PENDING, 0) + rows.get(DeliveryState.SENDING, 0)
    return Progress(
        total=sum(rows.values()),
        sent=rows.get(DeliveryState.SENT, 0),
        pending=pending,
        failed=rows.get(DeliveryState.FAILED, 0),
        skipped=rows.get(DeliveryState.SKIPPED, 0),
    )


def london_time_to_utc(day: date, at: time) -> datetime:
    """A wall-clock time in London as UTC; refuses times that do not exist or happen twice."""
    naive = datetime.combine(day, at)
    first, second = naive.replace(tzinfo=LONDON, fold=0), naive.replace(tzinfo=LONDON, fold=1)
    if first.astimezone(UTC).astimezone(LONDON).replace(tzinfo=None) != naive:
        raise InvalidInput(
            f"{at:%H:%M} does not exist on {day:%-d %B %Y}: the clocks go forward an hour that night. "
            "Choose a time before 1am or from 2am.",
            field="send_time",
        )
    if first.utcoffset() != second.utcoffset():
        raise InvalidInput(
            f"{at:%H:%M} happens twice on {day:%-d %B %Y}: the clocks go back an hour that night. "
            "Choose a time before 1am or from 2am.",
            field="send_time",
        )
    return first.astimezone(UTC)


def to_london(moment: datetime) -> datetime:
    return moment.astimezone(LONDON)


def _require(announcement: Announcement, states: tuple[AnnouncementState, ...], why: str) -> None:
    if announcement.state not in states:
        raise WrongState(f"This announcement is {announcement.state.value}. {why}")


def checked_draft(draft: AnnouncementDraft) -> tuple[str, str]:
    """The draft's subject and body, trimmed. Raises InvalidInput (field subject or body)."""
    subject = (draft.subject or "").strip()
    body = (draft.body_markdown or "").replace("\r\n", "\n").strip()
    if not subject:
        raise InvalidInput("Enter a subject.", field="subject")
    if len(subject) > MAX_SUBJECT_LENGTH:
        raise InvalidInput(f"The subject must be {MAX_SUBJECT_LENGTH} characters or fewer.", field="subject")
    if has_control_characters(subject):
        raise InvalidInput("The subject must be one line, without control characters.", field="subject")
    if not body:
        raise InvalidInput("Write the announcement.", field="body")
    if len(body) > MAX_BODY_LENGTH:
        raise InvalidInput(f"The announcement must be {MAX_BODY_LENGTH:,} characters or fewer.", field="body")
    if "\x00" in body:
        raise InvalidInput("The announcement contains characters that cannot be sent.", field="body")
    check_placeholders(subject, field="subject")
    check_placeholders(body, field="body")
    return subject, body


def _groups(session: Session, group_ids: list[int]) -> list[Group]:
    wanted = set(group_ids)
    if not wanted:
        return []
    groups = list(session.scalars(select(Group).where(Group.id.in_(wanted))))
    if len(groups) != len(wanted):
        raise InvalidInput("Choose groups from the list.", field="groups")
    return groups


DELETABLE = (AnnouncementState.DRAFT, AnnouncementState.CANCELLED, AnnouncementState.SENT)


def delete_announcement(session: Session, announcement: Announcement, *, keep_documents: bool) -> list[str]:
    """Delete a draft, cancelled or sent announcement with its delivery records (J3).

    Its documents either stay online at their links (sent emails point at them) or go too;
    returns the storage names of the files to remove once the transaction has committed.
    Raises WrongState while it is scheduled, held, sending or paused (cancel or let it finish)."""
    from mailer.models import Document

    _require(announcement, DELETABLE, "Cancel it, or let it finish sending, before deleting it.")
    documents = list(session.scalars(select(Document).where(Document.announcement_id == announcement.id)))
    remove: list[str] = []
    for document in documents:
        if keep_documents:
            document.announcement_id = None
        else:
            remove.append(document.storage_name)
            session.delete(document)
    session.flush()
    session.delete(announcement)
    session.flush()
    return remove
