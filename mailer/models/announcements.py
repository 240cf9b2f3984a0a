"""Announcements, their deliveries (the send queue), templates and documents (J3, S1, S3)."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Column, ForeignKey, Index, Integer, String, Table, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from mailer.extensions import db
from mailer.models.base import Model
from mailer.models.members import Group
from mailer.models.types import UTCDateTime, enum_column


class AnnouncementState(enum.StrEnum):
    DRAFT = "draft"
    SCHEDULED = "scheduled"
    HELD = "held"  # its time passed long ago while no worker ran: waits for an admin's decision
    SENDING = "sending"
    PAUSED = "paused"
    SENT = "sent"
    CANCELLED = "cancelled"


class DeliveryState(enum.StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    SKIPPED = "skipped"  # the member left or was suppressed before their turn (S5)


announcement_group = Table(
    "announcement_group",
    db.metadata,
    Column("announcement_id", ForeignKey("announcement.id", ondelete="CASCADE"), primary_key=True),
    Column("group_id", ForeignKey("group.id", ondelete="CASCADE"), primary_key=True),
)


class Announcement(Model):
    """An email to members, from draft to sent (J3, S1). Ids are never reused: archive links name them."""

    __tablename__ = "announcement"
    __table_args__ = {"sqlite_autoincrement": True}
    id: Mapped[int] = mapped_column(primary_key=True)
    subject: Mapped[str] = mapped_column(String(200))
    body_markdown: Mapped[str] = mapped_column(Text)
    only_without_social_media: Mapped[bool] = mapped_column(default=False)
    state: Mapped[AnnouncementState] = mapped_column(
        enum_column(AnnouncementState), default=AnnouncementState.DRAFT, index=True
    )
    scheduled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("admin.id", ondelete="SET NULL"))
    is_public: Mapped[bool] = mapped_column(default=False)
    recipient_count: Mapped[int] = mapped_column(Integer, default=0)
    # Bracket texts an admin confirmed are meant (V2), one a line: not gaps (mailer.announcements.gaps).
    meant_brackets: Mapped[str] = mapped_column(Text, default="", server_default="")

    groups: Mapped[list[Group]] = relationship(secondary=announcement_group, order_by=Group.position)


class Delivery(Model):
    """One announcement to one member. The row is the queue (S1, S3). Ids are never reused (AUTOINCREMENT
    on SQLite): VERP bounce addresses name the row by id (issue 15)."""

    __tablename__ = "delivery"
    __table_args__ = (
        UniqueConstraint("announcement_id", "member_id", name="uq_delivery_announcement_member"),
        Index("ix_delivery_due", "announcement_id", "state", "next_attempt_at", "id"),
        {"sqlite_autoincrement": True},
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    announcement_id: Mapped[int] = mapped_column(ForeignKey("announcement.id", ondelete="CASCADE"))
    member_id: Mapped[int | None] = mapped_column(ForeignKey("member.id", ondelete="SET NULL"), index=True)
    state: Mapped[DeliveryState] = mapped_column(enum_column(DeliveryState), default=DeliveryState.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(String(500))


class AnnouncementTemplate(Model):
    """A reusable starting point for an announcement: subject and Markdown with personal fields (issue 9)."""

    __tablename__ = "announcement_template"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    subject: Mapped[str] = mapped_column(String(200))
    body_markdown: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Document(Model):
    """A letter uploaded with an announcement and served from the forum's site (issue 9).

    The file is stored under `storage_name` (random); `public_id` is the unguessable part of
    its stable public URL; `file_name` is the uploaded name made safe."""

    __tablename__ = "document"
    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True)
    announcement_id: Mapped[int | None] = mapped_column(
        ForeignKey("announcement.id", ondelete="SET NULL"), index=True
    )
    title: Mapped[str] = mapped_column(String(200))
    file_name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(10))
    size_bytes: Mapped[int] = mapped_column(Integer)
    storage_name: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
