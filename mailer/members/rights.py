"""Members' rights (J5, C1-C3): change preferences, download everything held, erase.

Erasure keeps only a keyed hash of the address, so the person is never mailed again
unless they join and confirm again."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from mailer.bounces.records import forget_member_bounce_messages
from mailer.clock import Clock
from mailer.members import consent
from mailer.members.consent import Evidence
from mailer.members.membership import chosen_groups, clean_name
from mailer.models import (
    AddressChange,
    Announcement,
    ConsentAction,
    ConsentEvent,
    Delivery,
    Member,
    OutboxMessage,
    SocialMedia,
)

ERASED = "erased"


@dataclass(frozen=True)
class Preferences:
    name: str
    social_media: SocialMedia
    group_ids: list[int]


def update_preferences(
    session: Session, member: Member, preferences: Preferences, evidence: Evidence, *, clock: Clock
) -> bool:
    """Change name, groups and the social-media answer; record what changed. Returns False if nothing did.

    Raises InvalidInput for a bad name or an unknown group. Retired groups are not on the page, so the
    member keeps the ones they are in (V6)."""
    name = clean_name(preferences.name)
    groups = chosen_groups(session, preferences.group_ids)
    groups += [g for g in member.groups if g.retired_at is not None]
    before = _snapshot(member)
    member.name, member.social_media, member.groups = name, preferences.social_media, groups
    after = _snapshot(member)
    if before == after:
        return False
    member.updated_at = clock.now()
    changes = {key: {"from": before[key], "to": after[key]} for key in before if before[key] != after[key]}
    consent.record_consent(session, member, ConsentAction.PREFERENCES, evidence, clock=clock, detail=changes)
    return True


def export_member_data(session: Session, member: Member) -> dict[str, Any]:
    """Everything held about one member, for the download (UK GDPR right of access)."""
    events = session.scalars(
        select(ConsentEvent).where(ConsentEvent.member_id == member.id).order_by(ConsentEvent.id)
    ).all()
    deliveries = session.execute(
        select(Announcement.subject, Delivery.state, Delivery.sent_at, Delivery.attempts, Delivery.last_error)
        .join(Announcement, Announcement.id == Delivery.announcement_id)
        .where(Delivery.member_id == member.id)
        .order_by(Delivery.id)
    ).all()
    return {
        "profile": {
            "email": member.email,
            "name": member.name,
            "status": member.status.value,
            "social_media": member.social_media.value,
            "groups": [g.name for g in member.groups],
            "joined_at": _iso(member.created_at),
            "confirmed_at": _iso(member.confirmed_at),
            "unsubscribed_at": _iso(member.unsubscribed_at),
            "updated_at": _iso(member.updated_at),
            "permanent_delivery_failures": member.bounce_count,
        },
        "consent_history": [
            {
                "action": e.action.value,
                "method": e.method.value,
                "at": _iso(e.occurred_at),
                "email": e.email,
                "ip_address": e.ip_address,
                "user_agent": e.user_agent,
                "wording_version": e.wording.version if e.wording else None,
                "wording": e.wording.text if e.wording else None,
                "privacy_notice_version": e.wording.privacy_notice_version if e.wording else None,
                "detail": e.detail,
                "agreed_on": _iso(e.agreed_on),
                "note": e.note,
            }
            for e in events
        ],
        "emails_sent": [
            {"announcement": subject, "outcome": state.value, "sent_at": _iso(sent_at), "attempts": attempts,
             "error": error}
            for subject, state, sent_at, attempts, error in deliveries
        ],
    }


def erase_member(session: Session, member: Member, *, suppression_key: bytes, clock: Clock) -> None:
    """Delete the profile, group links and consent history; keep a suppression hash (C3).

    Deliveries keep only their outcome (the member link goes), queued mail is dropped."""
    consent.suppress_address(session, suppression_key, member.email_key, ERASED, clock=clock)
    forget_member_bounce_messages(session, member.id)
    session.execute(
        update(Delivery).where(Delivery.member_id == member.id).values(member_id=None, last_error=None)
        .execution_options(synchronize_session=False)
    )
    session.execute(
        update(OutboxMessage).where(OutboxMessage.member_id == member.id).values(member_id=None, to_address=None)
        .execution_options(synchronize_session=False)
    )
    session.execute(
        delete(ConsentEvent).where(ConsentEvent.member_id == member.id).execution_options(synchronize_session=False)
    )
    session.execute(  # a new address waiting to be confirmed is theirs too
        delete(AddressChange).where(AddressChange.member_id == member.id).execution_options(synchronize_session=False)
    )
    member.groups = []
    session.delete(member)


def _snapshot(member: Member) -> dict[str, Any]:
    return {
        "name": member.name,
        "social_media": member.social_media.value,
        "groups": sorted(g.name for g in member.groups),
    }


def _iso(moment: Any) -> str | None:
    return moment.isoformat() if moment else None
