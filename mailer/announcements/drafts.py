"""Writing an announcement (V3, issue 18.4-18.5, 18.9): autosave, test sends to typed addresses, and which
social-media answers the audience filter counts. Plain functions; the caller commits."""

from __future__ import annotations

import re

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mailer.announcements.lifecycle import AnnouncementDraft, audience, create_announcement, update_announcement
from mailer.clock import Clock
from mailer.errors import InvalidInput, WrongState
from mailer.mail.outbox import QueuedMail, enqueue_mails
from mailer.members.addresses import normalise_address
from mailer.models import Announcement, AnnouncementState, MailKind, Member, SocialMediaQuestion

MAX_TEST_ADDRESSES = 5
_SEPARATORS = re.compile(r"[\s,;]+")


def autosave_draft(
    session: Session, announcement_id: int | None, draft: AnnouncementDraft, *, admin_id: int | None, clock: Clock
) -> Announcement:
    """Keep what is typed: a new draft on the first save, then the same one (issue 18.4).

    Only a draft is autosaved: a scheduled announcement changes only when the admin presses Save, so a
    half-typed edit can never go out. Raises WrongState for anything but a draft, InvalidInput for a draft
    that cannot be saved yet (no subject, a misspelt field), LookupError for an id that does not exist."""
    if announcement_id is None:
        return create_announcement(session, draft, admin_id=admin_id, clock=clock)
    announcement = session.get(Announcement, announcement_id)
    if announcement is None:
        raise LookupError(announcement_id)
    if announcement.state is not AnnouncementState.DRAFT:
        raise WrongState(
            f"This announcement is {announcement.state.value}, so it is not saved as you type. "
            "Press Save to keep your changes."
        )
    update_announcement(session, announcement, draft, clock=clock)  # claims the row until the commit
    state = session.scalar(select(Announcement.state).where(Announcement.id == announcement.id))
    if state is not AnnouncementState.DRAFT:  # "Send now" won the race: the caller rolls this edit back
        raise WrongState("This announcement was scheduled a moment ago. Press Save to keep your changes.")
    announcement.updated_at = clock.now()
    return announcement


def parse_test_addresses(raw: str, *, default: str) -> list[str]:
    """Up to five addresses, typed one per line or separated by commas; none typed means `default` (the admin).

    Each is checked as the join form checks addresses. Raises InvalidInput(field="addresses") naming the
    first bad one."""
    typed = [part for part in _SEPARATORS.split(raw or "") if part]
    if not typed:
        typed = [default]
    if len(typed) > MAX_TEST_ADDRESSES:
        raise InvalidInput(
            f"Enter at most {MAX_TEST_ADDRESSES} email addresses. You entered {len(typed)}.", field="addresses"
        )
    addresses: list[str] = []
    for part in typed:
        try:
            address, _ = normalise_address(part)
        except InvalidInput:
            raise InvalidInput(
                f"“{part[:80]}” is not a valid email address. Enter addresses like name@example.com.",
                field="addresses",
            ) from None
        if address.lower() not in (a.lower() for a in addresses):
            addresses.append(address)
    return addresses


def queue_test_sends(
    session: Session, announcement: Announcement, addresses: list[str], *, sample_member_id: int | None, clock: Clock
) -> None:
    """One test email per address (issue 18.5), filled in with the chosen member's name and groups (none:
    the values a member with no name gets). The member is read again when the mail is built."""
    payload: dict[str, int] = {"announcement_id": announcement.id}
    if sample_member_id is not None:
        payload["sample_member_id"] = sample_member_id
    enqueue_mails(
        session, [QueuedMail(MailKind.TEST, to_address=a, payload=dict(payload)) for a in addresses], clock=clock
    )


def without_social_media_by_question(session: Session, group_ids: list[int]) -> dict[SocialMediaQuestion, int]:
    """How many of the "do not use social media" audience answered "No" to each wording (issue 18.9)."""
    ids = audience(group_ids, True).subquery()
    rows = session.execute(
        select(Member.social_media_question, func.count())
        .where(Member.id.in_(select(ids.c.id)))
        .group_by(Member.social_media_question)
    ).all()
    counts = dict.fromkeys(SocialMediaQuestion, 0)
    counts.update({question: count for question, count in rows})  # noqa: C416  (typed rows, not pairs)
    return counts
