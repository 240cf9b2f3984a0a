"""Consent evidence (C1) and suppression (C3): append-only events and keyed hashes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, NamedTuple

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from mailer.clock import Clock
from mailer.members.addresses import address_hash
from mailer.models import ConsentAction, ConsentEvent, ConsentMethod, ConsentWording, Member, Suppression, table_of
from mailer.text import without_control_characters

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
    admin_id: int | None = None  # the admin who recorded it, for them or on the person's behalf (V7)
    agreed_on: date | None = None  # the day they agreed by phone, on paper or in person (V7)
    note: str | None = None  # the admin's note on how they agreed (V7)


def current_wording(session: Session) -> ConsentWording:
    wording = session.scalars(select(ConsentWording).order_by(ConsentWording.version.desc()).limit(1)).first()
    if wording is None:
        raise LookupError("no consent wording: run 'flask --app wsgi db upgrade'")
    return wording


def wording_as_shown(wording: ConsentWording, forum_name: str) -> str:
    return wording.text.replace("{forum_name}", forum_name)


class ConsentRecord(NamedTuple):
    """One consent event to append: whose, what happened, how it reached us (C1).

    A named tuple, not a dataclass: an import makes thousands, and a tuple is made fastest."""

    member_id: int
    email: str
    action: ConsentAction
    evidence: Evidence
    wording_id: int | None = None
    detail: dict[str, Any] | None = None


def record_consents(session: Session, records: Sequence[ConsentRecord], *, clock: Clock) -> None:
    """Append many consent events in one multi-row insert, all at clock.now(); events are never updated.

    The one way consent events are written: record_consent sends a list of one. A Core insert on
    the table (the column types still convert enums, UTC times and JSON), so nothing waits for a
    flush and no ORM objects are made: an import writes thousands at once. The members must
    already have ids (be flushed)."""
    if not records:
        return
    now = clock.now()
    session.execute(
        insert(table_of(ConsentEvent)),
        [
            {
                "member_id": record.member_id,
                "action": record.action,
                "method": record.evidence.method,
                "occurred_at": now,
                "wording_id": record.wording_id,
                "email": record.email,
                "ip_address": (record.evidence.ip_address or None) and record.evidence.ip_address[:45],
                "user_agent": _printable(record.evidence.user_agent)[:300] or None,
                "detail": record.detail,
                "admin_id": record.evidence.admin_id,
                "agreed_on": record.evidence.agreed_on,
                "note": _printable(record.evidence.note)[:500] or None,
            }
            for record in records
        ],
    )


def record_consent(
    session: Session,
    member: Member,
    action: ConsentAction,
    evidence: Evidence,
    *,
    clock: Clock,
    wording: ConsentWording | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Append one consent event for a member that has an id: record_consents with a list of one."""
    record = ConsentRecord(
        member_id=member.id,
        email=member.email,
        action=action,
        evidence=evidence,
        wording_id=wording.id if wording else None,
        detail=detail,
    )
    record_consents(session, [record], clock=clock)


def record_agreement(
    session: Session,
    member: Member,
    action: ConsentAction,
    evidence: Evidence,
    *,
    forum_name: str,
    group_names: list[str],
    clock: Clock,
) -> None:
    """Record a request or confirmation with the evidence C1 asks for: the wording as it was shown,
    the privacy notice version and the groups chosen at that moment."""
    wording = current_wording(session)
    detail = {
        "wording_as_shown": wording_as_shown(wording, forum_name),
        "privacy_notice_version": wording.privacy_notice_version,
        "groups": group_names,
    }
    record_consent(session, member, action, evidence, clock=clock, wording=wording, detail=detail)


# Suppressed by the person's own request: joining and confirming again lifts it.
LIFTED_BY_RECONFIRMING = frozenset({"erased"})


def _printable(value: str | None) -> str:
    """Evidence text as sent, minus control characters (PostgreSQL cannot store a NUL at all)."""
    return without_control_characters(value or "")


def suppression_reason(session: Session, key: bytes, email_key: str) -> str | None:
    digest = address_hash(key, email_key)
    return session.scalar(select(Suppression.reason).where(Suppression.address_hash == digest))


def is_suppressed(session: Session, key: bytes, email_key: str) -> bool:
    return suppression_reason(session, key, email_key) is not None


def blocks_joining(session: Session, key: bytes, email_key: str) -> bool:
    """Bounces and complaints block mail for good; an erasure only until they confirm again."""
    reason = suppression_reason(session, key, email_key)
    return reason is not None and reason not in LIFTED_BY_RECONFIRMING


def lift_suppression(session: Session, key: bytes, email_key: str) -> None:
    """The person joined and confirmed again: their erasure no longer stops mail."""
    digest = address_hash(key, email_key)
    session.execute(
        delete(Suppression).where(Suppression.address_hash == digest, Suppression.reason.in_(LIFTED_BY_RECONFIRMING))
    )


def suppress_address(session: Session, key: bytes, email_key: str, reason: str, *, clock: Clock) -> None:
    """Remember never to mail this address; idempotent."""
    digest = address_hash(key, email_key)
    if session.scalar(select(Suppression.id).where(Suppression.address_hash == digest)) is None:
        session.add(Suppression(address_hash=digest, reason=reason, created_at=clock.now()))


def publish_wording(session: Session, text: str, privacy_notice_version: str, *, clock: Clock) -> ConsentWording:
    """A new consent wording version; old ones stay unchanged, and each event points at the one shown (C1).

    Raises InvalidInput for empty or oversized text."""
    from mailer.errors import InvalidInput

    text = (text or "").strip()
    privacy_notice_version = (privacy_notice_version or "").strip()
    if not text:
        raise InvalidInput("Enter the consent wording.", field="text")
    if len(text) > 2000:
        raise InvalidInput("The consent wording must be 2,000 characters or fewer.", field="text")
    if not privacy_notice_version or len(privacy_notice_version) > 50:
        raise InvalidInput("Enter the privacy notice version (up to 50 characters).", field="privacy_notice_version")
    latest = session.scalar(select(ConsentWording.version).order_by(ConsentWording.version.desc()).limit(1)) or 0
    wording = ConsentWording(
        version=latest + 1, text=text, privacy_notice_version=privacy_notice_version, created_at=clock.now()
    )
    session.add(wording)
    session.flush()
    return wording


def list_wordings(session: Session) -> list[ConsentWording]:
    return list(session.scalars(select(ConsentWording).order_by(ConsentWording.version.desc())))
