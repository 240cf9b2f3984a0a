"""Bounces and complaints: store what came back, read it, count it against the member (S4, C1, issue 8).

Two paths count a permanent failure: a 5xx during the SMTP conversation (the engine) and a
delivery status notification (DSN) that arrives later at the VERP bounce address. Both go
through record_bounce, so the threshold, the decay window and the suppression are one rule.

A received message is stored first (committed before the bounce server answers 250), then
processed by the worker; processed_at is set in the same transaction as the counting, and
each counted event carries a unique source_key, so a crash between the two, or the same
DSN delivered twice, never counts twice. A message whose VERP token is missing or forged is
kept, unmatched, for an admin: nothing is guessed from the addresses inside it."""

from __future__ import annotations

import email
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.header import decode_header, make_header
from email.message import Message
from typing import Any, TypedDict, cast

from flufl.bounce import all_failures
from sqlalchemy import CursorResult, delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mailer.clock import Clock
from mailer.errors import BounceTooLarge
from mailer.mail.verp import VerpKind, VerpTarget, read_token, tokens_in
from mailer.members import consent
from mailer.members.consent import Evidence
from mailer.models import (
    OTHER_ADDRESS_KINDS,
    Announcement,
    BounceEvent,
    BounceKind,
    BounceMessage,
    BounceOutcome,
    ConsentAction,
    ConsentMethod,
    Delivery,
    Member,
    MemberStatus,
    OutboxMessage,
)
from mailer.transaction import transaction

log = logging.getLogger(__name__)

COMPLAINT_SUPPRESSION = "complaint"
BOUNCE_SUPPRESSION = "bounces"


@dataclass(frozen=True)
class BouncePolicy:
    """The S4 rule and what is needed to read VERP tokens, from configuration."""

    threshold: int = 3
    decay: timedelta = timedelta(days=60)
    suppression_key: bytes = b""
    bounce_address: str = ""
    verp_key: bytes = b""
    max_bytes: int = 256 * 1024

    def accepts_recipient(self, address: str) -> bool:
        """Whether the bounce port should take mail for this envelope recipient (issue 15): the bounce
        address itself, or its VERP form whose token we signed. Anything else is refused at RCPT, so
        the port is no open mailbox for anyone's mail."""
        wanted = self.bounce_address.strip().lower()
        if not wanted or "@" not in wanted:
            return False
        candidate = address.strip().strip("<>").lower()
        if candidate == wanted:
            return True
        local, _, domain = wanted.rpartition("@")
        their_local, _, their_domain = candidate.rpartition("@")
        prefix = f"{local}+"
        if their_domain != domain or not their_local.startswith(prefix) or not self.verp_key:
            return False
        return read_token(self.verp_key, their_local[len(prefix):]) is not None


@dataclass(frozen=True)
class BounceBacklog:
    """Stored messages the worker has not read yet: the bounce port stops taking more past a cap."""

    messages: int
    size: int  # bytes


def unprocessed_bounce_backlog(session: Session) -> BounceBacklog:
    messages, size = session.execute(
        select(func.count(), func.coalesce(func.sum(BounceMessage.size), 0)).where(BounceMessage.processed_at.is_(None))
    ).one()
    return BounceBacklog(int(messages or 0), int(size or 0))


# --- storing ------------------------------------------------------------------------


def store_bounce_message(
    session: Session,
    raw: bytes,
    *,
    mail_from: str,
    rcpt_tos: list[str],
    source: str,
    max_bytes: int,
    clock: Clock,
) -> int:
    """Keep one received message, unprocessed, and return its id; the caller commits.

    Raises BounceTooLarge above max_bytes (the SMTP server answers 552, IMAP leaves it alone)."""
    if len(raw) > max_bytes:
        raise BounceTooLarge(len(raw), max_bytes)
    row = BounceMessage(
        received_at=clock.now(),
        source=source[:10],
        mail_from=(mail_from or "").strip().strip("<>")[:320],  # the null sender <> as ""
        rcpt_to=",".join(rcpt_tos)[:2000],
        raw=raw,
        size=len(raw),
    )
    session.add(row)
    session.flush()
    return row.id


# --- reading ------------------------------------------------------------------------


@dataclass(frozen=True)
class ParsedBounce:
    """What one message says, before looking anything up: pure, so the corpus tests need no database."""

    kind: BounceKind | None  # None: no failure found (auto-reply, success notice)
    target: VerpTarget | None
    forged_token: bool  # a token was present but its signature did not match
    reason: str
    failed: frozenset[str] = field(default_factory=frozenset)


_STATUS = re.compile(r"^\s*([245])\.\d{1,3}\.\d{1,3}")
_SMTP_REPLY = re.compile(r"\b([45]\d\d[ -](?:[45]\.\d{1,3}\.\d{1,3}\b)?[^\r\n]{0,300})")


def parse_bounce(raw: bytes, rcpt_tos: list[str], policy: BouncePolicy) -> ParsedBounce:
    """Find the VERP token, then whether it is a complaint, a permanent or a temporary failure.

    Never raises: malformed MIME gives what could be read, at worst "no failure found"."""
    try:
        msg = email.message_from_bytes(raw)
    except Exception as exc:  # the parser is lenient, but a bug in it must not stop the worker
        return ParsedBounce(None, None, False, f"unreadable message: {type(exc).__name__}")
    target, forged = _find_target(msg, raw, rcpt_tos, policy)
    if _is_complaint(msg):
        return ParsedBounce(BounceKind.COMPLAINT, target, forged, _complaint_reason(msg))
    try:
        temporary, permanent = all_failures(msg)
    except Exception as exc:  # flufl.bounce's heuristics on broken MIME
        log.warning("bounce parsing failed: %s", type(exc).__name__)
        temporary, permanent = frozenset(), frozenset()
    statuses = _delivery_statuses(msg)
    reason = _reason(msg, statuses)
    failed = frozenset(a.decode("ascii", "replace").lower() for a in permanent | temporary)
    if permanent:
        kind: BounceKind | None = BounceKind.PERMANENT
    elif temporary:
        kind = BounceKind.TEMPORARY
    elif any(s.startswith("5") for s in statuses):
        kind = BounceKind.PERMANENT  # a DSN whose recipient lines the detectors could not read
    elif any(s.startswith("4") for s in statuses):
        kind = BounceKind.TEMPORARY
    else:
        kind = None
    return ParsedBounce(kind, target, forged, reason, failed)


def _find_target(msg: Message, raw: bytes, rcpt_tos: list[str], policy: BouncePolicy) -> tuple[VerpTarget | None, bool]:
    """The first validly signed token: envelope recipient, then the headers, then anywhere in the text.

    The last covers complaints and DSNs that quote the original's Return-Path; a token found
    there still has to carry our signature, so nothing is guessed."""
    if not policy.bounce_address or not policy.verp_key:
        return None, False
    places = [" ".join(rcpt_tos)]
    for header in ("Delivered-To", "X-Original-To", "Envelope-To", "To"):
        places.extend(str(v) for v in msg.get_all(header, []))
    places.append(raw.decode("latin-1"))
    forged = False
    for text in places:
        for token in tokens_in(text, policy.bounce_address):
            target = read_token(policy.verp_key, token)
            if target is not None:
                return target, False
            forged = True
    return None, forged


def _is_complaint(msg: Message) -> bool:
    """An ARF report (RFC 5965): multipart/report; report-type=feedback-report."""
    report_type = msg.get_param("report-type")  # a tuple only when RFC 2231 encoded: never in an ARF report
    if (
        msg.get_content_type() == "multipart/report"
        and isinstance(report_type, str)
        and report_type.lower() == "feedback-report"
    ):
        return True
    return any(part.get_content_type() == "message/feedback-report" for part in msg.walk())


def _complaint_reason(msg: Message) -> str:
    for part in msg.walk():
        if part.get_content_type() == "message/feedback-report":
            text = _part_text(part)
            match = re.search(r"^Feedback-Type:\s*(\S+)", text, re.IGNORECASE | re.MULTILINE)
            if match:
                return f"complaint ({match.group(1)[:50]})"
    return "complaint"


def _delivery_statuses(msg: Message) -> list[str]:
    """Status codes (e.g. 5.1.1) from every message/delivery-status block."""
    statuses = []
    for part in msg.walk():
        if part.get_content_type() != "message/delivery-status" or not part.is_multipart():
            continue
        for block in part.get_payload():
            if isinstance(block, Message):
                status = str(block.get("Status", "")).strip()
                if _STATUS.match(status):
                    statuses.append(status.split()[0])
    return statuses


def _reason(msg: Message, statuses: list[str]) -> str:
    """The remote server's words: Diagnostic-Code, else Status, else an SMTP reply quoted in the text."""
    for part in msg.walk():
        if part.get_content_type() == "message/delivery-status" and part.is_multipart():
            for block in part.get_payload():
                if isinstance(block, Message) and block.get("Diagnostic-Code"):
                    code = " ".join(str(block["Diagnostic-Code"]).split())
                    return code.split(";", 1)[-1].strip()[:500]
    if statuses:
        return f"status {statuses[0]}"
    for part in msg.walk():
        if part.get_content_type() == "text/plain":
            match = _SMTP_REPLY.search(_part_text(part))
            if match:
                return " ".join(match.group(1).split())[:500]
            break
    return ""


def _part_text(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if isinstance(payload, bytes):
        return payload.decode(part.get_content_charset() or "utf-8", "replace")
    if part.is_multipart():
        return "\n".join(str(p) for p in part.get_payload())
    return str(part.get_payload())


# --- processing ------------------------------------------------------------------------


@dataclass
class BounceSummary:
    processed: int = 0
    counted: int = 0
    complaints: int = 0
    unmatched: int = 0
    errors: int = 0

    @property
    def busy(self) -> bool:
        return bool(self.processed or self.errors)


def process_bounce_messages(session: Session, policy: BouncePolicy, *, clock: Clock, limit: int = 100) -> BounceSummary:
    """Process stored messages not yet processed, one transaction each; returns what happened.

    On PostgreSQL each row is locked with SKIP LOCKED, so several workers share the work. A
    message that makes the code fail is marked with the error and never retried in a loop."""
    summary = BounceSummary()
    ids = list(
        session.scalars(
            select(BounceMessage.id).where(BounceMessage.processed_at.is_(None)).order_by(BounceMessage.id).limit(limit)
        )
    )
    session.rollback()
    for message_id in ids:
        try:
            try:
                with transaction(session):
                    outcome = process_bounce_message(session, message_id, policy, clock=clock)
            except IntegrityError:
                # Another worker recorded the same cause (a duplicate DSN) a moment ago: once more,
                # and this time record_bounce sees its event and counts nothing.
                with transaction(session):
                    outcome = process_bounce_message(session, message_id, policy, clock=clock)
        except Exception as exc:
            log.exception("bounce message %d: could not be processed", message_id)
            summary.errors += 1
            with transaction(session):
                row = session.get(BounceMessage, message_id)
                if row is not None and row.processed_at is None:
                    row.processed_at, row.outcome = clock.now(), BounceOutcome.UNMATCHED
                    row.detail = f"could not be processed: {type(exc).__name__}"
            continue
        if outcome is None:
            continue
        summary.processed += 1
        if outcome is BounceOutcome.MATCHED:
            summary.counted += 1
        elif outcome is BounceOutcome.COMPLAINT:
            summary.complaints += 1
        elif outcome is BounceOutcome.UNMATCHED:
            summary.unmatched += 1
    return summary


def process_bounce_message(
    session: Session, message_id: int, policy: BouncePolicy, *, clock: Clock
) -> BounceOutcome | None:
    """Read one stored message and apply it; None when another worker has it or it is done.

    Sets processed_at in the caller's transaction, together with whatever it counted."""
    row = session.scalars(
        select(BounceMessage)
        .where(BounceMessage.id == message_id, BounceMessage.processed_at.is_(None))
        .with_for_update(skip_locked=True)
    ).first()
    if row is None:
        return None
    parsed = parse_bounce(row.raw, [a for a in row.rcpt_to.split(",") if a], policy)
    member_id, outcome, detail = _apply(session, row, parsed, policy, clock=clock)
    row.processed_at, row.outcome, row.detail = clock.now(), outcome, detail[:500]
    if outcome is BounceOutcome.UNMATCHED:
        # Only why, not the remote server's words: those often quote the address, and logs name none.
        log.warning("bounce message %d: unmatched (%s)", row.id, detail.split(";", 1)[0])
    else:
        log.info("bounce message %d: %s, member %s", row.id, outcome.value, member_id)
    return outcome


class _EventFields(TypedDict):
    """What record_bounce and record_complaint are told about a matched bounce message, besides the reason."""

    source_key: str
    delivery_id: int | None
    outbox_id: int | None
    bounce_message_id: int
    occurred_at: datetime
    policy: BouncePolicy
    clock: Clock


def _apply(
    session: Session, row: BounceMessage, parsed: ParsedBounce, policy: BouncePolicy, *, clock: Clock
) -> tuple[int | None, BounceOutcome, str]:
    if parsed.target is None:
        why = "VERP token signature did not match (forged or damaged)" if parsed.forged_token else "no VERP token"
        return None, BounceOutcome.UNMATCHED, f"{why}; {parsed.reason}".rstrip("; ")
    member_id: int | None
    if parsed.target.kind is VerpKind.DELIVERY:
        delivery = session.get(Delivery, parsed.target.row_id)
        member_id = delivery.member_id if delivery else None
        row.delivery_id = delivery.id if delivery else None
    else:
        outbox = session.get(OutboxMessage, parsed.target.row_id)
        member_id = outbox.member_id if outbox and outbox.kind not in OTHER_ADDRESS_KINDS else None
        row.outbox_id = outbox.id if outbox else None
    if row.delivery_id is None and row.outbox_id is None:
        return None, BounceOutcome.UNMATCHED, f"the message it names no longer exists; {parsed.reason}".rstrip("; ")
    if parsed.kind is None:
        return member_id, BounceOutcome.NOT_A_BOUNCE, "no delivery failure found"
    source_key = bounce_source_key(parsed.kind, parsed.target.kind, parsed.target.row_id, message_id=row.id)
    common = _EventFields(
        source_key=source_key, delivery_id=row.delivery_id, outbox_id=row.outbox_id, bounce_message_id=row.id,
        occurred_at=row.received_at, policy=policy, clock=clock,
    )
    if parsed.kind is BounceKind.COMPLAINT:
        record_complaint(session, member_id, reason=parsed.reason, **common)
        return member_id, BounceOutcome.COMPLAINT, parsed.reason
    record_bounce(session, member_id, parsed.kind, reason=parsed.reason, **common)
    return member_id, BounceOutcome.MATCHED, f"{parsed.kind.value}: {parsed.reason}".rstrip(": ")


# --- policy ------------------------------------------------------------------------------


def bounce_source_key(kind: BounceKind, row_kind: VerpKind, row_id: int, *, message_id: int | None = None) -> str:
    """What makes two reports the same cause: one sent message fails permanently (or is complained about) once.

    So a DSN delivered twice, a DSN after an SMTP-time 5xx for the same delivery, or a crash
    between counting and marking, all count once. Delay notices are kept one per message."""
    if kind is BounceKind.TEMPORARY:
        return f"temporary:msg{message_id}"
    return f"{kind.value}:{row_kind.value}{row_id}"



def record_bounce(
    session: Session,
    member_id: int | None,
    kind: BounceKind,
    *,
    reason: str,
    source_key: str,
    policy: BouncePolicy,
    clock: Clock,
    occurred_at: datetime | None = None,
    delivery_id: int | None = None,
    outbox_id: int | None = None,
    bounce_message_id: int | None = None,
) -> bool:
    """Record one failure; a permanent one counts, and at the threshold the member is suppressed (S4).

    The counter is the number of permanent failures within the decay window, so old ones
    expire. Idempotent per source_key: returns False when this cause was already recorded."""
    if not _add_event(session, source_key, member_id, kind, (reason or "")[:500], occurred_at or clock.now(),
                      delivery_id=delivery_id, outbox_id=outbox_id, bounce_message_id=bounce_message_id):
        return False
    if member_id is None or kind is not BounceKind.PERMANENT:
        return True
    member = session.get(Member, member_id)
    if member is None:
        return True
    member.bounce_count = count_recent_bounces(session, member_id, policy=policy, clock=clock)
    if member.bounce_count >= policy.threshold and member.status is MemberStatus.MEMBER:
        _suppress_for_bounces(session, member, reason, policy=policy, clock=clock)
    return True


def record_complaint(
    session: Session,
    member_id: int | None,
    *,
    reason: str,
    source_key: str,
    policy: BouncePolicy,
    clock: Clock,
    occurred_at: datetime | None = None,
    delivery_id: int | None = None,
    outbox_id: int | None = None,
    bounce_message_id: int | None = None,
) -> bool:
    """A spam complaint unsubscribes the member at once and keeps the address off the list (C2, C3)."""
    if not _add_event(session, source_key, member_id, BounceKind.COMPLAINT, (reason or "complaint")[:500],
                      occurred_at or clock.now(), delivery_id=delivery_id, outbox_id=outbox_id,
                      bounce_message_id=bounce_message_id):
        return False
    member = session.get(Member, member_id) if member_id is not None else None
    if member is None:
        return True
    consent.suppress_address(session, policy.suppression_key, member.email_key, COMPLAINT_SUPPRESSION, clock=clock)
    if member.status is not MemberStatus.UNSUBSCRIBED:
        now = clock.now()
        member.status, member.unsubscribed_at, member.updated_at = MemberStatus.UNSUBSCRIBED, now, now
        consent.record_consent(
            session, member, ConsentAction.WITHDRAWN, Evidence(ConsentMethod.SYSTEM), clock=clock,
            detail={"reason": "complaint", "note": "marked one of our emails as spam (a feedback-loop complaint)"},
        )
        log.warning("member %d: unsubscribed after a complaint", member.id)
    return True


def _add_event(
    session: Session, source_key: str, member_id: int | None, kind: BounceKind, reason: str, occurred_at: datetime,
    *, delivery_id: int | None, outbox_id: int | None, bounce_message_id: int | None,
) -> bool:
    """Store one bounce event; False (and nothing stored) when its cause was recorded before."""
    if session.scalar(select(BounceEvent.id).where(BounceEvent.source_key == source_key)) is not None:
        return False
    session.add(
        BounceEvent(
            source_key=source_key, member_id=member_id, delivery_id=delivery_id, outbox_id=outbox_id,
            bounce_message_id=bounce_message_id, kind=kind, reason=reason, occurred_at=occurred_at,
        )
    )
    session.flush()
    return True


def count_recent_bounces(session: Session, member_id: int, *, policy: BouncePolicy, clock: Clock) -> int:
    since = clock.now() - policy.decay
    return session.scalar(
        select(func.count()).where(
            BounceEvent.member_id == member_id,
            BounceEvent.kind == BounceKind.PERMANENT,
            BounceEvent.occurred_at >= since,
        )
    ) or 0


def _suppress_for_bounces(
    session: Session, member: Member, last_reason: str, *, policy: BouncePolicy, clock: Clock
) -> None:
    now = clock.now()
    member.status, member.unsubscribed_at, member.updated_at = MemberStatus.UNSUBSCRIBED, now, now
    consent.suppress_address(session, policy.suppression_key, member.email_key, BOUNCE_SUPPRESSION, clock=clock)
    days = policy.decay.days
    why = f"{member.bounce_count} permanent delivery failures within {days} days"
    consent.record_consent(
        session, member, ConsentAction.SUPPRESSED, Evidence(ConsentMethod.SYSTEM), clock=clock,
        detail={"reason": why, "kind": "bounce",
                "note": f"stopped after {why}; the last mail server said: {last_reason or 'no reason given'}"[:400]},
    )
    log.warning("member %d: suppressed after %s", member.id, why)


# --- retention (C3) ---------------------------------------------------------------------------


def purge_bounce_messages(session: Session, *, older_than: datetime) -> int:
    """Delete processed raw messages received before `older_than`: they quote the address (C3).

    The counted events stay (their reasons are the remote server's words, kept for the admin)."""
    result = cast("CursorResult[Any]", session.execute(  # DML runs on a cursor: rowcount is there
        delete(BounceMessage)
        .where(BounceMessage.processed_at.is_not(None), BounceMessage.received_at < older_than)
        .execution_options(synchronize_session=False)
    ))
    return result.rowcount or 0


def forget_member_bounce_messages(session: Session, member_id: int) -> None:
    """On erasure: the raw reports about this member's mail go too (their events go with the member row)."""
    deliveries = select(Delivery.id).where(Delivery.member_id == member_id)
    outbox = select(OutboxMessage.id).where(OutboxMessage.member_id == member_id)
    session.execute(
        delete(BounceMessage)
        .where(BounceMessage.delivery_id.in_(deliveries) | BounceMessage.outbox_id.in_(outbox))
        .execution_options(synchronize_session=False)
    )
    session.execute(
        delete(BounceEvent).where(BounceEvent.member_id == member_id).execution_options(synchronize_session=False)
    )


# --- for the admin pages -------------------------------------------------------------------


@dataclass(frozen=True)
class BounceLine:
    id: int
    occurred_at: datetime
    kind: BounceKind
    reason: str
    member_id: int | None
    member_email: str | None
    announcement_id: int | None
    announcement_subject: str | None


def list_recent_bounces(session: Session, *, limit: int = 100) -> list[BounceLine]:
    rows = session.execute(
        select(
            BounceEvent.id, BounceEvent.occurred_at, BounceEvent.kind, BounceEvent.reason, BounceEvent.member_id,
            Member.email, Announcement.id, Announcement.subject,
        )
        .outerjoin(Member, Member.id == BounceEvent.member_id)
        .outerjoin(Delivery, Delivery.id == BounceEvent.delivery_id)
        .outerjoin(Announcement, Announcement.id == Delivery.announcement_id)
        .order_by(BounceEvent.occurred_at.desc(), BounceEvent.id.desc())
        .limit(limit)
    ).all()
    return [BounceLine(*row) for row in rows]


def list_members_near_threshold(
    session: Session, *, policy: BouncePolicy, clock: Clock, limit: int = 100
) -> list[tuple[int, str, int]]:
    """(member id, email, recent permanent failures) for members still on the list with at least one."""
    since = clock.now() - policy.decay
    recent = func.count(BounceEvent.id)
    rows = session.execute(
        select(Member.id, Member.email, recent)
        .join(BounceEvent, BounceEvent.member_id == Member.id)
        .where(
            Member.status == MemberStatus.MEMBER,
            BounceEvent.kind == BounceKind.PERMANENT,
            BounceEvent.occurred_at >= since,
        )
        .group_by(Member.id, Member.email)
        .order_by(recent.desc(), Member.id)
        .limit(limit)
    ).all()
    return [(m_id, email, int(count)) for m_id, email, count in rows]


def list_unmatched_messages(session: Session, *, limit: int = 100) -> list[tuple[int, datetime, str, str, str]]:
    """(id, received at, sender, subject, why) of messages that named no delivery we know."""
    rows = session.execute(
        select(
            BounceMessage.id,
            BounceMessage.received_at,
            BounceMessage.mail_from,
            BounceMessage.raw,
            BounceMessage.detail,
        )
        .where(BounceMessage.outcome == BounceOutcome.UNMATCHED)
        .order_by(BounceMessage.id.desc())
        .limit(limit)
    ).all()
    return [(m_id, at, sender or "<>", _subject(raw), detail or "") for m_id, at, sender, raw, detail in rows]


def count_unprocessed(session: Session) -> int:
    return session.scalar(select(func.count()).where(BounceMessage.processed_at.is_(None))) or 0


def list_member_bounces(session: Session, member_id: int, *, limit: int = 50) -> list[BounceEvent]:
    return list(
        session.scalars(
            select(BounceEvent)
            .where(BounceEvent.member_id == member_id)
            .order_by(BounceEvent.occurred_at.desc())
            .limit(limit)
        )
    )


def _subject(raw: bytes) -> str:
    try:
        headers = email.message_from_bytes(raw[:20000].split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0])
        return " ".join(str(make_header(decode_header(headers.get("Subject", "")))).split())[:200]
    except Exception:
        return "(unreadable subject)"
