"""Bounce messages as they came in, and the failures and complaints counted from them (S4)."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from mailer.models.base import Model
from mailer.models.types import UTCDateTime, enum_column


class BounceKind(enum.StrEnum):
    PERMANENT = "permanent"
    TEMPORARY = "temporary"
    COMPLAINT = "complaint"  # a feedback-loop (ARF) report: the reader pressed "this is spam"


class BounceOutcome(enum.StrEnum):
    """What processing made of a received bounce message."""

    MATCHED = "matched"  # a valid VERP token named a delivery or outbox row, and a failure was found
    UNMATCHED = "unmatched"  # no token, or a forged one: kept for an admin, nothing counted
    NOT_A_BOUNCE = "not_a_bounce"  # valid token but no failure found (auto-replies, delay notices we ignore)
    COMPLAINT = "complaint"


class BounceMessage(Model):
    """A message that came back to the bounce address, stored before it is read (issue 8).

    Stored raw and committed before the SMTP server answers 250, then processed by the
    worker: processed_at is set in the same transaction as the counting it caused."""

    __tablename__ = "bounce_message"
    id: Mapped[int] = mapped_column(primary_key=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    source: Mapped[str] = mapped_column(String(10))  # "smtp" or "imap"
    mail_from: Mapped[str] = mapped_column(String(320), default="")
    rcpt_to: Mapped[str] = mapped_column(String(2000), default="")  # envelope recipients, comma separated
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    size: Mapped[int] = mapped_column(Integer)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    outcome: Mapped[BounceOutcome | None] = mapped_column(enum_column(BounceOutcome))
    detail: Mapped[str | None] = mapped_column(String(500))
    delivery_id: Mapped[int | None] = mapped_column(ForeignKey("delivery.id", ondelete="SET NULL"))
    outbox_id: Mapped[int | None] = mapped_column(ForeignKey("outbox.id", ondelete="SET NULL"))


class BounceEvent(Model):
    """One failure or complaint counted against a member; permanent ones within the decay window count (S4).

    source_key is unique per cause (a bounce message and the row it named, or an SMTP-time
    refusal of a delivery), so processing the same cause twice counts it once."""

    __tablename__ = "bounce_event"
    id: Mapped[int] = mapped_column(primary_key=True)
    source_key: Mapped[str] = mapped_column(String(100), unique=True)
    member_id: Mapped[int | None] = mapped_column(ForeignKey("member.id", ondelete="CASCADE"), index=True)
    delivery_id: Mapped[int | None] = mapped_column(ForeignKey("delivery.id", ondelete="SET NULL"))
    outbox_id: Mapped[int | None] = mapped_column(ForeignKey("outbox.id", ondelete="SET NULL"))
    bounce_message_id: Mapped[int | None] = mapped_column(ForeignKey("bounce_message.id", ondelete="SET NULL"))
    kind: Mapped[BounceKind] = mapped_column(enum_column(BounceKind))
    reason: Mapped[str] = mapped_column(String(500), default="")
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
