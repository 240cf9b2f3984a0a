"""Member state changes for joining and confirming (J1, J2), as plain functions.

Each function takes a session, ids and settings, may flush but never commits, and
raises domain exceptions; the caller owns the transaction."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mailer.clock import Clock, FrozenClock
from mailer.errors import InvalidInput, NotPending, TokenInvalid
from mailer.mail.outbox import enqueue_mail
from mailer.members import consent
from mailer.members.addresses import normalise_address
from mailer.members.consent import Evidence
from mailer.models import ConsentAction, ConsentMethod, Group, JoinRequest, MailKind, Member, MemberStatus, SocialMedia
from mailer.text import has_control_characters, without_control_characters

MAX_NAME_LENGTH = 100


class JoinOutcome(enum.StrEnum):
    """What happened; the visitor sees the same page whatever it is (no enumeration, J1)."""

    NEW = "new"
    CONFIRMATION_RESENT = "confirmation_resent"
    ALREADY_MEMBER = "already_member"
    THROTTLED = "throttled"
    SUPPRESSED = "suppressed"


@dataclass(frozen=True)
class JoinDetails:
    email: str
    name: str
    social_media: SocialMedia
    group_ids: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class MembershipPolicy:
    """What joining needs to know: Settings.membership_policy, for the pages and the worker alike."""

    suppression_key: bytes
    forum_name: str
    confirmation_interval: timedelta = timedelta(hours=1)



def clean_name(raw: str) -> str:
    """A display name safe for headers and pages: control characters and line breaks refused."""
    name = (raw or "").strip()
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidInput(f"Your name must be {MAX_NAME_LENGTH} characters or fewer.", field="name")
    if has_control_characters(name):
        raise InvalidInput("Your name must not contain line breaks or control characters.", field="name")
    return name


def request_join(
    session: Session, details: JoinDetails, evidence: Evidence, *, policy: MembershipPolicy, clock: Clock
) -> JoinOutcome:
    """Record a signup and queue the right email for the address's state.

    New and unsubscribed addresses get a confirmation request; a member gets a
    'you are already a member' note; a suppressed address gets nothing. At most one
    mail per address per confirmation interval, however often the form is posted.
    Raises InvalidInput for a bad address, name or group."""
    email, email_key = normalise_address(details.email)
    name = clean_name(details.name)
    groups = chosen_groups(session, details.group_ids)
    if consent.blocks_joining(session, policy.suppression_key, email_key):
        return JoinOutcome.SUPPRESSED
    member = session.scalar(select(Member).where(Member.email_key == email_key))
    now = clock.now()
    if member is not None and member.status is MemberStatus.MEMBER:
        sent = queue_link_mail(session, member, MailKind.ALREADY_MEMBER, policy=policy, clock=clock)
        return JoinOutcome.ALREADY_MEMBER if sent else JoinOutcome.THROTTLED
    if member is not None and member.status is MemberStatus.PENDING:
        # Someone else may have typed this pending address: their name and groups stay as they
        # were, and the owner of the address only gets the confirmation link again (issue 15).
        sent = queue_link_mail(session, member, MailKind.CONFIRM, policy=policy, clock=clock)
        return JoinOutcome.CONFIRMATION_RESENT if sent else JoinOutcome.THROTTLED

    outcome = JoinOutcome.CONFIRMATION_RESENT
    if member is None:
        outcome = JoinOutcome.NEW
        member = Member(email=email, email_key=email_key, created_at=now, status=MemberStatus.PENDING)
        session.add(member)
    elif member.status is MemberStatus.UNSUBSCRIBED and not _rejoined_since_leaving(member):
        # Confirm and preferences links sent before they left must not re-subscribe them or show
        # their details; unsubscribe links keep working (find_member_to_unsubscribe).
        member.token_version += 1
    member.email, member.name, member.social_media, member.groups = email, name, details.social_media, groups
    member.updated_at = now
    session.flush()
    consent.record_agreement(
        session,
        member,
        ConsentAction.REQUESTED,
        evidence,
        forum_name=policy.forum_name,
        group_names=[g.name for g in groups],
        clock=clock,
    )
    if not queue_link_mail(session, member, MailKind.CONFIRM, policy=policy, clock=clock):
        return JoinOutcome.THROTTLED
    return outcome


def queue_join(session: Session, details: JoinDetails, evidence: Evidence, *, clock: Clock) -> JoinRequest:
    """Check a join form post and store it for the worker (J1).

    The web request does this and nothing else, the same statements whatever the address is (new,
    pending, a member or suppressed), so neither the page nor the time it takes tells anyone who is
    on the list; process_join_requests does the rest on the worker's next tick.
    Raises InvalidInput for a bad address, name or group, and then stores nothing."""
    email, _ = normalise_address(details.email)
    name = clean_name(details.name)
    groups = chosen_groups(session, details.group_ids)
    request = JoinRequest(
        email=email,
        name=name,
        social_media=details.social_media,
        group_ids=[g.id for g in groups],
        ip_address=(evidence.ip_address or None) and evidence.ip_address[:45],
        user_agent=without_control_characters(evidence.user_agent or "")[:300] or None,  # PostgreSQL holds no NUL
        created_at=clock.now(),
    )
    session.add(request)
    session.flush()
    return request


def process_join_requests(
    session: Session, *, policy: MembershipPolicy, limit: int = 100
) -> list[JoinOutcome]:
    """Carry out queued join form posts in order, each as of the moment it was posted.

    Each request runs in a savepoint and is deleted when done; one that fails on a database
    conflict (two workers, the same new address) stays for the next tick. On PostgreSQL several
    workers skip each other's rows. The caller commits."""
    outcomes = []
    requests = session.scalars(
        select(JoinRequest).order_by(JoinRequest.id).limit(limit).with_for_update(skip_locked=True)
    ).all()
    for request in requests:
        details = JoinDetails(
            email=request.email, name=request.name, social_media=request.social_media, group_ids=request.group_ids
        )
        evidence = Evidence(method=ConsentMethod.FORM, ip_address=request.ip_address, user_agent=request.user_agent)
        try:
            with session.begin_nested():
                outcome = request_join(session, details, evidence, policy=policy, clock=FrozenClock(request.created_at))
        except InvalidInput:
            outcome = None  # a group retired since the post: nothing to do but forget it
        except IntegrityError:
            continue
        session.delete(request)
        if outcome is not None:
            outcomes.append(outcome)
    session.flush()
    return outcomes


def confirm_membership(
    session: Session, link_key: str, version: int, evidence: Evidence, *, policy: MembershipPolicy, clock: Clock
) -> tuple[Member, bool]:
    """Confirm a signup and queue the welcome mail; safe to repeat (scanners re-POST, J2).

    Returns (member, newly_confirmed). Raises TokenInvalid for an unknown member or a
    revoked link, NotPending when they left after this link was sent."""
    member = _member_for_link(session, link_key, version)
    if member.status is MemberStatus.MEMBER:
        return member, False
    if member.status is MemberStatus.UNSUBSCRIBED and not _rejoined_since_leaving(member):
        raise NotPending("You left the list after this link was sent. Join again to get a new link.")
    if consent.blocks_joining(session, policy.suppression_key, member.email_key):
        raise TokenInvalid()
    consent.lift_suppression(session, policy.suppression_key, member.email_key)
    now = clock.now()
    member.status, member.confirmed_at, member.unsubscribed_at, member.updated_at = (
        MemberStatus.MEMBER,
        now,
        None,
        now,
    )
    consent.record_agreement(
        session,
        member,
        ConsentAction.CONFIRMED,
        evidence,
        forum_name=policy.forum_name,
        group_names=[g.name for g in member.groups],
        clock=clock,
    )
    enqueue_mail(session, MailKind.WELCOME, member_id=member.id, clock=clock)
    return member, True


def resend_confirmation(
    session: Session, link_key: str, version: int, *, policy: MembershipPolicy, clock: Clock
) -> bool:
    """Queue a fresh confirmation link for an expired one; False when throttled or not needed.

    Raises TokenInvalid when the link was revoked or the member is gone."""
    member = _member_for_link(session, link_key, version)
    if member.status is MemberStatus.MEMBER:
        return False
    if member.status is MemberStatus.UNSUBSCRIBED and not _rejoined_since_leaving(member):
        raise NotPending("You left the list after this link was sent. Join again to get a new link.")
    if consent.blocks_joining(session, policy.suppression_key, member.email_key):
        return False
    return queue_link_mail(session, member, MailKind.CONFIRM, policy=policy, clock=clock)


def withdraw_consent(
    session: Session, link_key: str, evidence: Evidence, *, clock: Clock
) -> tuple[Member | None, bool]:
    """Unsubscribe at once, from a link or the one-click header (J4, C2); safe to repeat.

    Any unsubscribe link ever sent to the member works, whatever version it carries (see
    find_member_to_unsubscribe). Returns (member, newly_withdrawn); (None, False) when the
    member was erased: they are not on the list, and nothing changes."""
    member = find_member_to_unsubscribe(session, link_key)
    if member is None:
        return None, False
    if member.status is MemberStatus.UNSUBSCRIBED:
        return member, False
    now = clock.now()
    member.status, member.unsubscribed_at, member.updated_at = MemberStatus.UNSUBSCRIBED, now, now
    consent.record_consent(session, member, ConsentAction.WITHDRAWN, evidence, clock=clock)
    return member, True


def find_member_to_unsubscribe(session: Session, link_key: str) -> Member | None:
    """The member an unsubscribe link was made for, or None when they were erased (J4).

    Unsubscribe links never expire and are not revoked by a version bump: leaving must work from
    every email ever sent, also after the member left, joined again and confirmed (their links then
    carry an older version). The link key is random and belongs to one member row for ever, so an
    old link still names only that person. The link shows nothing but whether they are subscribed."""
    return session.scalar(select(Member).where(Member.link_key == link_key))


def find_member_for_link(session: Session, link_key: str, version: int) -> Member:
    """The member a valid link belongs to. Raises TokenInvalid when revoked or gone."""
    return _member_for_link(session, link_key, version)


def list_groups(session: Session, *, include_retired: bool = False) -> list[Group]:
    """The groups in the join form's order; retired ones only when asked (V6: admin lists of members)."""
    query = select(Group).order_by(Group.position, Group.id)
    if not include_retired:
        query = query.where(Group.retired_at.is_(None))
    return list(session.scalars(query))


def _member_for_link(session: Session, link_key: str, version: int) -> Member:
    """By the link's random key, never by id: the row that link was made for, or nobody (issue 15)."""
    member = session.scalar(select(Member).where(Member.link_key == link_key))
    if member is None or member.token_version != version:
        raise TokenInvalid()
    return member


def _rejoined_since_leaving(member: Member) -> bool:
    return (
        member.last_confirmation_sent_at is not None
        and member.unsubscribed_at is not None
        and member.last_confirmation_sent_at > member.unsubscribed_at
    )


def queue_link_mail(
    session: Session, member: Member, kind: MailKind, *, policy: MembershipPolicy, clock: Clock
) -> bool:
    """Queue one of the mails a stranger can trigger by typing an address, at most one per address
    per confirmation interval (J1); False, and nothing queued, when the last one is too recent."""
    last = member.last_confirmation_sent_at
    if last is not None and clock.now() - last < policy.confirmation_interval:
        return False
    member.last_confirmation_sent_at = clock.now()
    enqueue_mail(session, kind, member_id=member.id, clock=clock)
    return True


def chosen_groups(session: Session, group_ids: list[int]) -> list[Group]:
    """The groups with these ids, in list order. Raises InvalidInput (field groups) for an unknown or retired id
    (a retired group is on no form, V6)."""
    wanted = set(group_ids)
    if not wanted:
        return []
    groups = list(
        session.scalars(
            select(Group).where(Group.id.in_(wanted), Group.retired_at.is_(None)).order_by(Group.position)
        )
    )
    if len(groups) != len(wanted):
        raise InvalidInput("Choose groups from the list.", field="groups")
    return groups


def request_preferences_link(
    session: Session, email: str, *, policy: MembershipPolicy, clock: Clock
) -> bool:
    """Email a fresh preferences link to a member who lost theirs; the page answers the same either way.

    Returns whether a mail was queued (at most one link mail per address per interval)."""
    try:
        _, email_key = normalise_address(email)
    except InvalidInput:
        return False
    member = session.scalar(select(Member).where(Member.email_key == email_key))
    if member is None or member.status is not MemberStatus.MEMBER:
        return False
    return queue_link_mail(session, member, MailKind.PREFERENCES_LINK, policy=policy, clock=clock)
