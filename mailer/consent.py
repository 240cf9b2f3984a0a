"""Consent evidence (C1) and suppression (C3): append-only events and keyed hashes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from .addresses import address_hash
from .clock import Clock
from .models import ConsentAction, ConsentEvent, ConsentMethod, ConsentWording, Member, Suppression

# The first wording, also written by the initial migration. Later versions are new rows.
FIRST_WORDING_TEXT = (
    "Yes, I want {forum_name} to email me its news and the announcements for the groups "
    "I have chosen. I can withdraw my consent at any time with the unsubscribe link in "
    "every email."
)
FIRST_PRIVACY_NOTICE_VERSION = "2026-11"


@dataclass(frozen=True)
class Evidence:
    """How a consent action reached us: the 'how' of C1."""

    method: ConsentMethod
    ip_address: str | None = None
    user_agent: str | None = None


def current_wording(session: Session) -> ConsentWording:
    wording = session.scalars(select(ConsentWording).order_by(ConsentWording.version.desc()).limit(1)).first()
    if wording is None:
        raise LookupError("no consent wording: run 'flask --app wsgi db upgrade'")
    return wording


def wording_as_shown(wording: ConsentWording, forum_name: str) -> str:
    return wording.text.replace("{forum_name}", forum_name)


def record_consent(
    session: Session,
    member: Member,
    action: ConsentAction,
    evidence: Evidence,
    *,
    clock: Clock,
    wording: ConsentWording | None = None,
    detail: dict[str, Any] | None = None,
) -> ConsentEvent:
    """Append one consent event; events are never updated (a listener refuses it)."""
    event = ConsentEvent(
        member_id=member.id,
        action=action,
        method=evidence.method,
        occurred_at=clock.now(),
        wording_id=wording.id if wording else None,
        email=member.email,
        ip_address=(evidence.ip_address or None) and evidence.ip_address[:45],
        user_agent=(evidence.user_agent or None) and evidence.user_agent[:300],
        detail=detail,
    )
    session.add(event)
    return event


def is_suppressed(session: Session, key: bytes, email_key: str) -> bool:
    digest = address_hash(key, email_key)
    return session.scalar(select(Suppression.id).where(Suppression.address_hash == digest)) is not None


def suppress_address(session: Session, key: bytes, email_key: str, reason: str, *, clock: Clock) -> None:
    """Remember never to mail this address; idempotent."""
    digest = address_hash(key, email_key)
    if session.scalar(select(Suppression.id).where(Suppression.address_hash == digest)) is None:
        session.add(Suppression(address_hash=digest, reason=reason, created_at=clock.now()))
