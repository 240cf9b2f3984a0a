"""Transactional mail waiting to go (S6)."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from mailer.models.base import Model
from mailer.models.types import UTCDateTime, enum_column


class MailKind(enum.StrEnum):
    CONFIRM = "confirm"
    ALREADY_MEMBER = "already_member"
    WELCOME = "welcome"
    TEST = "test"
    PREFERENCES_LINK = "preferences_link"
    # Admin accounts (V4): to an address, with the link's row id in the payload.
    ADMIN_INVITATION = "admin_invitation"
    PASSWORD_RESET = "password_reset"
    EMAIL_CHANGE = "admin_email_change"
    # To an admin's old address, after they confirmed a new one: no link.
    EMAIL_CHANGED = "admin_email_changed"

    CONFIRM_REMINDER = "confirm_reminder"  # the one reminder to a signup not confirmed after N days (issue 20.7)
    WELCOME_ADDED = "welcome_added"  # welcome for someone an admin added on their word (phone, paper, in person)
    ADDRESS_CONFIRM = "address_confirm"  # to a new address: confirm it before it replaces the old (V7)
    ADDRESS_CHANGED = "address_changed"  # to the old address: it was replaced


# Mail to an address that is not the member's own (yet, or any more): a bounce or complaint about it must not count
# against the member's current address (V7).
OTHER_ADDRESS_KINDS = frozenset({MailKind.ADDRESS_CONFIRM, MailKind.ADDRESS_CHANGED})


class OutboxState(enum.StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    DROPPED = "dropped"  # nobody to send it to any more (erased, unsubscribed)


class OutboxMessage(Model):
    """Transactional mail waiting to go, written in the same transaction as its cause (S6).

    The message is built at send time from kind + member, so links carry the member's
    current token version and an erased member's mail is dropped, not sent. Ids are never
    reused (AUTOINCREMENT on SQLite): VERP bounce addresses name the row by id (issue 15)."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_due", "state", "next_attempt_at", "id"), {"sqlite_autoincrement": True})
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[MailKind] = mapped_column(enum_column(MailKind))
    member_id: Mapped[int | None] = mapped_column(ForeignKey("member.id", ondelete="SET NULL"), index=True)
    to_address: Mapped[str | None] = mapped_column(String(320))
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    state: Mapped[OutboxState] = mapped_column(enum_column(OutboxState), default=OutboxState.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(String(500))
