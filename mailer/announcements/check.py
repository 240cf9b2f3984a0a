"""Check and send (V1, issue 18): what an admin confirms before an announcement goes out.

`check_send` says it in words: the subject, who it reaches, how many members (the engine's own
audience query, counted now), when (UK time), and what looks unfinished (gaps.py). The check page
signs what it showed into its form (`sign_check`); `confirm_send` takes only a token that names
this announcement, the same content and the same count, so a POST that skipped the check page, or
one made before the draft changed, sends nothing. An audience of nobody is refused."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import select
from sqlalchemy.orm import Session

from mailer.announcements.gaps import Gap, announcement_gaps
from mailer.announcements.lifecycle import count_audience, schedule_announcement, send_announcement_now, to_london
from mailer.clock import Clock
from mailer.errors import CheckOutdated, GapsLeft, InvalidInput, NobodyToSend
from mailer.models import Announcement, Document

SEND_NOW, SCHEDULE = "send-now", "schedule"
CHECK_SALT = "announcement-check"
CHECK_MAX_AGE = timedelta(hours=2)


@dataclass(frozen=True)
class SendCheck:
    """Everything the check page shows, and what its token promises."""

    announcement_id: int
    action: str
    subject: str
    audience: str
    count: int
    send_at: datetime  # UTC; for "send now", the end of the undo window counted from now
    when: str
    gaps: list[Gap]
    version: str


def audience_words(group_names: list[str], only_without_social_media: bool) -> str:
    """"members of Local Offer working group who said they do not use social media", "all members", ..."""
    if not group_names:
        words = "all members"
    elif len(group_names) == 1:
        words = f"members of {group_names[0]}"
    else:
        words = f"members of {', '.join(group_names[:-1])} or {group_names[-1]}"
    if only_without_social_media:
        words += " who said they do not use social media"
    return words


def when_words(moment: datetime, now: datetime, *, seconds: bool = False) -> str:
    """UK time in words: "today at 18:00", "tomorrow at 09:30", "Friday 10 May at 12:00" (the year if not this one)."""
    local, today = to_london(moment), to_london(now).date()
    clock_time = f"{local:%H:%M:%S}" if seconds else f"{local:%H:%M}"
    if local.date() == today:
        return f"today at {clock_time}"
    if local.date() == today + timedelta(days=1):
        return f"tomorrow at {clock_time}"
    day = f"{local:%A} {local.day} {local:%B}" + ("" if local.year == today.year else f" {local.year}")
    return f"{day} at {clock_time}"


def content_version(session: Session, announcement: Announcement) -> str:
    """A fingerprint of everything that makes the email and its audience: any change means checking again."""
    documents = list(session.scalars(
        select(Document.public_id).where(Document.announcement_id == announcement.id).order_by(Document.id)
    ))
    content = [
        announcement.subject, announcement.body_markdown, sorted(g.id for g in announcement.groups),
        announcement.only_without_social_media, announcement.meant_brackets or "", documents,
    ]
    return hashlib.sha256(json.dumps(content).encode()).hexdigest()[:32]


def check_send(
    session: Session, announcement: Announcement, *, action: str, when: datetime | None, clock: Clock,
    undo: timedelta,
) -> SendCheck:
    """What the check page shows for "Send now" (when None) or "Schedule" (when: aware)."""
    now = clock.now()
    if action == SCHEDULE:
        if when is None or when <= now:
            raise InvalidInput("Choose a time in the future.", field="send_time")
        send_at = max(when.astimezone(UTC), now + undo)
    elif action == SEND_NOW:
        send_at = now + undo
    else:
        raise InvalidInput("Choose Send now or Schedule.")
    group_ids = [g.id for g in announcement.groups]
    return SendCheck(
        announcement_id=announcement.id,
        action=action,
        subject=announcement.subject,
        audience=audience_words([g.name for g in announcement.groups], announcement.only_without_social_media),
        count=count_audience(session, group_ids, announcement.only_without_social_media),
        send_at=send_at,
        when=when_words(send_at, now, seconds=action == SEND_NOW),
        gaps=announcement_gaps(session, announcement),
        version=content_version(session, announcement),
    )


def sign_check(check: SendCheck, secret: str) -> str:
    """The check page's promise: this announcement, this content, this many members, this time (schedule)."""
    when = check.send_at.isoformat() if check.action == SCHEDULE else None
    return str(_serializer(secret).dumps([check.announcement_id, check.action, check.version, check.count, when]))


def confirm_send(
    session: Session, announcement: Announcement, token: str, *, action: str, secret: str, clock: Clock,
    undo: timedelta,
) -> tuple[SendCheck, datetime]:
    """Send (or schedule) what the check page showed, or change nothing.

    Raises InvalidInput for a missing or forged token (the POST skipped the check page), CheckOutdated
    when the content, the count or the gaps differ from what was shown (or the page is old), NobodyToSend
    for an empty audience, GapsLeft while anything looks unfinished, TransitionRefused once it has started.
    Returns the check and the time it is due (UTC)."""
    try:
        shown = _serializer(secret).loads(token, max_age=int(CHECK_MAX_AGE.total_seconds()))
    except SignatureExpired as exc:
        raise CheckOutdated("You checked this announcement a while ago. Check it again before sending.") from exc
    except BadSignature as exc:
        raise InvalidInput("Nothing was sent: check the announcement on its check page first.") from exc
    if not (isinstance(shown, list) and len(shown) == 5 and shown[:2] == [announcement.id, action]):
        raise InvalidInput("Nothing was sent: check the announcement on its check page first.")
    _, _, version, count, when_text = shown
    when = datetime.fromisoformat(when_text) if isinstance(when_text, str) else None
    check = check_send(session, announcement, action=action, when=when, clock=clock, undo=undo)
    if check.count == 0:
        raise NobodyToSend()
    if check.gaps:
        raise GapsLeft()
    if (version, count) != (check.version, check.count):
        raise CheckOutdated()
    if action == SEND_NOW:
        due = send_announcement_now(session, announcement, clock=clock, undo=undo)
    else:
        if when is None:  # signed by us with a time: cannot happen
            raise InvalidInput("Nothing was sent: check the announcement on its check page first.")
        due = schedule_announcement(session, announcement, when, clock=clock, undo=undo)
    return check, due


def _serializer(secret: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret, salt=CHECK_SALT)


__all__ = [
    "CHECK_MAX_AGE", "SCHEDULE", "SEND_NOW", "CheckOutdated", "GapsLeft", "NobodyToSend", "SendCheck",
    "audience_words", "check_send", "confirm_send", "content_version", "sign_check", "when_words",
]
