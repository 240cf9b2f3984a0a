"""One member at a time (V7): an admin adds a member, edits their name and groups, and addresses change.

Plain functions over a session, ids, a policy and a clock, like mailer.members.membership: they may flush but
never commit, and raise domain exceptions. An admin adding someone either sends the same confirmation email as
the join form (double opt-in) or records how the person agreed (by phone, on a paper form, in person: the day,
the wording they were told and a note) as consent evidence with the admin's id.

A new address never replaces the old one until the person presses a link sent to the new address, and the old
address is then told. Asked for by an admin or by the member from their preferences page, it works the same way.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from mailer.clock import Clock
from mailer.errors import InvalidInput, NotPending, Suppressed, TokenInvalid
from mailer.mail.outbox import enqueue_mail
from mailer.members import consent, rights
from mailer.members.addresses import normalise_address
from mailer.members.consent import Evidence
from mailer.members.membership import (
    JoinDetails,
    JoinOutcome,
    MembershipPolicy,
    chosen_groups,
    clean_name,
    request_join,
)
from mailer.models import (
    AddressChange,
    ConsentAction,
    ConsentMethod,
    ConsentWording,
    MailKind,
    Member,
    MemberStatus,
)
from mailer.text import has_control_characters

# How someone can agree when an admin records it (V7): one consent method per channel.
AGREEMENT_METHODS = (ConsentMethod.PHONE, ConsentMethod.PAPER_FORM, ConsentMethod.IN_PERSON)
MAX_NOTE_LENGTH = 500
OLDEST_AGREEMENT = date(2000, 1, 1)

SUPPRESSED_MESSAGE = (
    "This address is on the do-not-email list, so it cannot be added here. If the person wants to join, "
    "ask them to use the join form on the website."
)


@dataclass(frozen=True)
class Agreement:
    """How someone agreed when it was not through the join form: the evidence an admin records (C1, V7)."""

    method: ConsentMethod
    agreed_on: date
    wording_id: int
    note: str = ""


class AddOutcome(enum.StrEnum):
    ADDED = "added"  # a member at once, with the admin's evidence
    CONFIRMATION_SENT = "confirmation_sent"  # asked to confirm by email, like the join form
    CONFIRMATION_THROTTLED = "confirmation_throttled"  # a confirmation went to them recently: none sent now


def add_member(
    session: Session,
    details: JoinDetails,
    admin_id: int,
    *,
    agreement: Agreement | None,
    policy: MembershipPolicy,
    clock: Clock,
    today: date,
) -> tuple[Member, AddOutcome]:
    """Add one person for an admin (V7): with no agreement, the join form's double opt-in (request_join, marked
    as the admin's); with one, a member at once, the evidence recorded and the welcome email queued.

    `today` is the UK date, so an agreement cannot be dated in the future. Raises InvalidInput for a bad
    address, name, group, method, date, wording or note, or when they are already a member; Suppressed when
    the address is on the do-not-email list (an erased address can still be sent a confirmation email: the
    person confirming it themselves lifts the erasure)."""
    email, email_key = normalise_address(details.email)
    clean_name(details.name)
    chosen_groups(session, details.group_ids)
    wording = _check_agreement(session, agreement, today) if agreement is not None else None
    existing = session.scalar(select(Member).where(Member.email_key == email_key))
    if existing is not None and existing.status is MemberStatus.MEMBER:
        raise InvalidInput(f"{email} is already a member.", field="email")
    if agreement is None:
        if consent.blocks_joining(session, policy.suppression_key, email_key):
            raise Suppressed(SUPPRESSED_MESSAGE)
        outcome = request_join(session, details, Evidence(ConsentMethod.ADMIN, admin_id=admin_id), policy=policy,
                               clock=clock)
        member = session.scalars(select(Member).where(Member.email_key == email_key)).one()
        sent = outcome in (JoinOutcome.NEW, JoinOutcome.CONFIRMATION_RESENT)
        return member, AddOutcome.CONFIRMATION_SENT if sent else AddOutcome.CONFIRMATION_THROTTLED
    if consent.is_suppressed(session, policy.suppression_key, email_key):
        raise Suppressed(SUPPRESSED_MESSAGE)
    assert wording is not None
    member = _make_member(session, existing, details, email, email_key, clock=clock)
    consent.record_consent(
        session,
        member,
        ConsentAction.CONFIRMED,
        Evidence(agreement.method, admin_id=admin_id, agreed_on=agreement.agreed_on, note=agreement.note or None),
        clock=clock,
        wording=wording,
        detail={
            "wording_as_shown": consent.wording_as_shown(wording, policy.forum_name),
            "privacy_notice_version": wording.privacy_notice_version,
            "groups": [g.name for g in member.groups],
            "agreed_on": agreement.agreed_on.isoformat(),
            "admin_id": admin_id,
        },
    )
    enqueue_mail(session, MailKind.WELCOME_ADDED, member_id=member.id, clock=clock)
    return member, AddOutcome.ADDED


def _check_agreement(session: Session, agreement: Agreement, today: date) -> ConsentWording:
    if agreement.method not in AGREEMENT_METHODS:
        raise InvalidInput("Choose how they agreed.", field="method")
    if agreement.agreed_on > today:
        raise InvalidInput("The date they agreed must be today or in the past.", field="agreed_on")
    if agreement.agreed_on < OLDEST_AGREEMENT:
        raise InvalidInput("Enter the date they agreed, like 14 9 2026.", field="agreed_on")
    if len(agreement.note) > MAX_NOTE_LENGTH:
        raise InvalidInput(f"The note must be {MAX_NOTE_LENGTH} characters or fewer.", field="note")
    if has_control_characters(agreement.note.replace("\r\n", "\n").replace("\n", " ")):
        raise InvalidInput("The note must not contain control characters.", field="note")
    wording = session.get(ConsentWording, agreement.wording_id)
    if wording is None:
        raise InvalidInput("Choose the wording they were told.", field="wording")
    return wording


def _make_member(
    session: Session, existing: Member | None, details: JoinDetails, email: str, email_key: str, *, clock: Clock
) -> Member:
    now = clock.now()
    name, groups = clean_name(details.name), chosen_groups(session, details.group_ids)
    member = existing
    if member is None:
        member = Member(email=email, email_key=email_key, created_at=now, updated_at=now)
        session.add(member)
    elif member.status is MemberStatus.UNSUBSCRIBED:
        member.token_version += 1  # links sent before they left must not act for the new membership
    member.email, member.name, member.social_media, member.groups = email, name, details.social_media, groups
    member.status, member.confirmed_at, member.unsubscribed_at, member.updated_at = (
        MemberStatus.MEMBER, now, None, now,
    )
    session.flush()
    return member


def edit_member(
    session: Session, member: Member, preferences: rights.Preferences, admin_id: int, *, clock: Clock
) -> bool:
    """An admin changes a member's name, groups and social media answer, recorded like the member's own change
    (a preferences event) with the admin's id. Returns False when nothing changed. Raises InvalidInput."""
    return rights.update_preferences(
        session, member, preferences, Evidence(ConsentMethod.ADMIN, admin_id=admin_id), clock=clock
    )


# --- changing an address -------------------------------------------------------------------------------------


class ChangeOutcome(enum.StrEnum):
    SENT = "sent"  # a confirmation link is on its way to the new address
    THROTTLED = "throttled"  # one was sent recently: none sent now
    IN_USE = "in_use"  # another member row has that address: nothing sent
    SUPPRESSED = "suppressed"  # the new address is on the do-not-email list: nothing sent


def request_address_change(
    session: Session,
    member: Member,
    new_address: str,
    *,
    admin_id: int | None,
    policy: MembershipPolicy,
    clock: Clock,
) -> ChangeOutcome:
    """Send a confirmation link to a member's new address; the old stays until it is pressed (V7).

    The member's own page answers the same whatever the outcome (no enumeration: nobody learns whether another
    address is on the list or suppressed); an admin is told. At most one link per member per confirmation
    interval. Raises InvalidInput for a bad address or the address they have; NotPending unless they are a
    member."""
    email, email_key = normalise_address(new_address)
    if member.status is not MemberStatus.MEMBER:
        raise NotPending("Only a confirmed member's address can be changed. Add them again with the new address.")
    if email_key == member.email_key:
        raise InvalidInput("That is the address already in use for this membership.", field="email")
    if consent.is_suppressed(session, policy.suppression_key, email_key):
        return ChangeOutcome.SUPPRESSED
    if session.scalar(select(Member.id).where(Member.email_key == email_key)) is not None:
        return ChangeOutcome.IN_USE
    last = session.scalar(
        select(AddressChange.created_at)
        .where(AddressChange.member_id == member.id)
        .order_by(AddressChange.id.desc())
        .limit(1)
    )
    if last is not None and clock.now() - last < policy.confirmation_interval:
        return ChangeOutcome.THROTTLED
    change = AddressChange(
        member_id=member.id, new_email=email, new_email_key=email_key, admin_id=admin_id, created_at=clock.now()
    )
    session.add(change)
    session.flush()
    enqueue_mail(
        session,
        MailKind.ADDRESS_CONFIRM,
        member_id=member.id,
        to_address=email,
        payload={"change_key": change.key},
        clock=clock,
    )
    return ChangeOutcome.SENT


def find_address_change(session: Session, key: str, *, max_age: timedelta, now: datetime) -> AddressChange:
    """The change a link names, if it can still be confirmed. Raises TokenInvalid otherwise (unknown, cancelled by
    another change confirmed first, too old, or the member has left)."""
    change = session.scalar(select(AddressChange).where(AddressChange.key == key))
    if change is None or now - change.created_at > max_age:
        raise TokenInvalid()
    member = session.get(Member, change.member_id)
    if member is None or member.status is not MemberStatus.MEMBER:
        raise TokenInvalid()
    return change


def confirm_address_change(
    session: Session, key: str, evidence: Evidence, *, policy: MembershipPolicy, max_age: timedelta, clock: Clock
) -> tuple[Member, bool]:
    """The link at the new address was pressed: the new address replaces the old, the old is told (V7).

    Safe to repeat: returns (member, newly_changed). Other waiting changes for the member are cancelled, and
    links sent before (to the old address) stop working, except unsubscribe links. Raises TokenInvalid for an
    unknown or stale link, InvalidInput when the address came onto the list meanwhile."""
    change = find_address_change(session, key, max_age=max_age, now=clock.now())
    member = session.get_one(Member, change.member_id)
    if change.confirmed_at is not None:
        return member, False
    if session.scalar(select(Member.id).where(Member.email_key == change.new_email_key)) is not None:
        raise InvalidInput("This address is already on our list, so it cannot be used for another membership.")
    if consent.blocks_joining(session, policy.suppression_key, change.new_email_key):
        raise TokenInvalid()
    consent.lift_suppression(session, policy.suppression_key, change.new_email_key)
    now = clock.now()
    old_email = member.email
    member.email, member.email_key, member.updated_at = change.new_email, change.new_email_key, now
    member.token_version += 1
    change.confirmed_at = now
    session.execute(
        delete(AddressChange)
        .where(
            AddressChange.member_id == member.id, AddressChange.id != change.id, AddressChange.confirmed_at.is_(None)
        )
        .execution_options(synchronize_session=False)
    )
    recorded = Evidence(evidence.method, evidence.ip_address, evidence.user_agent, admin_id=change.admin_id)
    consent.record_consent(
        session, member, ConsentAction.PREFERENCES, recorded, clock=clock,
        detail={"email": {"from": old_email, "to": change.new_email}},
    )
    enqueue_mail(session, MailKind.ADDRESS_CHANGED, member_id=member.id, to_address=old_email, clock=clock)
    return member, True


def pending_address_change(session: Session, member_id: int, *, max_age: timedelta, now: datetime) -> str | None:
    """The new address waiting to be confirmed for this member, if any (for the admin's member page)."""
    change = session.scalar(
        select(AddressChange)
        .where(AddressChange.member_id == member_id, AddressChange.confirmed_at.is_(None))
        .order_by(AddressChange.id.desc())
        .limit(1)
    )
    if change is None or now - change.created_at > max_age:
        return None
    return change.new_email


def purge_address_changes(session: Session, *, before: datetime) -> None:
    """Forget address changes asked for before `before`, confirmed or not: their links have expired, and an
    address nobody confirmed is not kept (housekeeping's purge calls this)."""
    session.execute(
        delete(AddressChange).where(AddressChange.created_at < before).execution_options(synchronize_session=False)
    )
