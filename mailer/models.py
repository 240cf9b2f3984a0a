"""Typed tables and their states. Behaviour lives in the domain modules, not here."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    event,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .extensions import db
from .tokens import new_link_key


class UTCDateTime(TypeDecorator):
    """Aware UTC datetimes in and out, on SQLite (which has no time zones) too."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given where aware UTC is required")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _enum(cls: type[enum.Enum], length: int = 20) -> Enum:
    """Store StrEnum values as plain strings, portable between SQLite and PostgreSQL."""
    return Enum(
        cls,
        native_enum=False,
        create_constraint=False,
        length=length,
        values_callable=lambda e: [m.value for m in e],
    )


class MemberStatus(enum.StrEnum):
    PENDING = "pending"
    MEMBER = "member"
    UNSUBSCRIBED = "unsubscribed"


class SocialMedia(enum.StrEnum):
    """The join form's question: does this person follow the forum on social media?"""

    YES = "yes"
    NO = "no"
    PREFER_NOT_TO_SAY = "prefer_not_to_say"


class ConsentAction(enum.StrEnum):
    REQUESTED = "requested"  # ticked the consent box on the join form
    CONFIRMED = "confirmed"  # opened the link and pressed the button (double opt-in)
    WITHDRAWN = "withdrawn"  # unsubscribed
    IMPORTED = "imported"  # came in with evidence from an import
    SUPPRESSED = "suppressed"  # bounces or complaints
    PREFERENCES = "preferences"  # changed what they receive


class ConsentMethod(enum.StrEnum):
    FORM = "form"
    EMAIL_LINK = "email_link"
    ONE_CLICK = "one_click"
    IMPORT = "import"
    ADMIN = "admin"
    SYSTEM = "system"


class MailKind(enum.StrEnum):
    CONFIRM = "confirm"
    ALREADY_MEMBER = "already_member"
    WELCOME = "welcome"
    TEST = "test"
    PREFERENCES_LINK = "preferences_link"


class OutboxState(enum.StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    DROPPED = "dropped"  # nobody to send it to any more (erased, unsubscribed)


member_group = Table(
    "member_group",
    db.metadata,
    Column("member_id", ForeignKey("member.id", ondelete="CASCADE"), primary_key=True),
    Column("group_id", ForeignKey("group.id", ondelete="CASCADE"), primary_key=True),
)


class Group(db.Model):
    """A topic members choose on the join form; announcements can target groups."""

    __tablename__ = "group"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str] = mapped_column(String(300), default="")
    position: Mapped[int] = mapped_column(Integer, default=0)


class Member(db.Model):
    """One person on the list. The email is kept as typed (normalised); email_key decides uniqueness.

    Ids are never reused (AUTOINCREMENT on SQLite, an identity on PostgreSQL), and links name the
    random link_key, not the id: a link can only ever open this row (issue 15)."""

    __tablename__ = "member"
    __table_args__ = {"sqlite_autoincrement": True}
    id: Mapped[int] = mapped_column(primary_key=True)
    link_key: Mapped[str] = mapped_column(String(64), unique=True, default=new_link_key)
    email: Mapped[str] = mapped_column(String(320))
    email_key: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(100), default="")
    status: Mapped[MemberStatus] = mapped_column(_enum(MemberStatus), default=MemberStatus.PENDING, index=True)
    social_media: Mapped[SocialMedia] = mapped_column(_enum(SocialMedia), default=SocialMedia.PREFER_NOT_TO_SAY)
    token_version: Mapped[int] = mapped_column(Integer, default=1)
    bounce_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    unsubscribed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_confirmation_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    groups: Mapped[list[Group]] = relationship(secondary=member_group, order_by=Group.position)


class ConsentWording(db.Model):
    """What a person was told when they agreed. Never edited: a change is a new version (C1)."""

    __tablename__ = "consent_wording"
    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[int] = mapped_column(Integer, unique=True)
    text: Mapped[str] = mapped_column(Text)
    privacy_notice_version: Mapped[str] = mapped_column(String(50))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ConsentEvent(db.Model):
    """Append-only evidence of consent given, confirmed or withdrawn (C1)."""

    __tablename__ = "consent_event"
    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("member.id", ondelete="CASCADE"), index=True)
    action: Mapped[ConsentAction] = mapped_column(_enum(ConsentAction))
    method: Mapped[ConsentMethod] = mapped_column(_enum(ConsentMethod))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    wording_id: Mapped[int | None] = mapped_column(ForeignKey("consent_wording.id"))
    email: Mapped[str] = mapped_column(String(320))
    ip_address: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(String(300))
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    wording: Mapped[ConsentWording | None] = relationship()


@event.listens_for(ConsentEvent, "before_update")
def _consent_events_are_append_only(mapper: Any, connection: Any, target: ConsentEvent) -> None:
    raise RuntimeError("consent events are append-only (C1)")


@event.listens_for(ConsentWording, "before_update")
def _consent_wording_is_never_edited(mapper: Any, connection: Any, target: ConsentWording) -> None:
    raise RuntimeError("consent wording is versioned, never edited (C1)")


class Suppression(db.Model):
    """An address that must never be mailed, kept only as a keyed hash (C3)."""

    __tablename__ = "suppression"
    id: Mapped[int] = mapped_column(primary_key=True)
    address_hash: Mapped[str] = mapped_column(String(64), unique=True)
    reason: Mapped[str] = mapped_column(String(30))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class JoinRequest(db.Model):
    """A join form post waiting for the worker (J1). The web request only checks the form and
    stores this row, the same work whoever the address belongs to, so the time the page takes
    tells nobody whether someone is a member, pending or suppressed. Deleted once processed."""

    __tablename__ = "join_request"
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320))
    name: Mapped[str] = mapped_column(String(100), default="")
    social_media: Mapped[SocialMedia] = mapped_column(_enum(SocialMedia))
    group_ids: Mapped[list[int]] = mapped_column(JSON)
    ip_address: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class OutboxMessage(db.Model):
    """Transactional mail waiting to go, written in the same transaction as its cause (S6).

    The message is built at send time from kind + member, so links carry the member's
    current token version and an erased member's mail is dropped, not sent. Ids are never
    reused (AUTOINCREMENT on SQLite): VERP bounce addresses name the row by id (issue 15)."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_due", "state", "next_attempt_at", "id"), {"sqlite_autoincrement": True})
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[MailKind] = mapped_column(_enum(MailKind))
    member_id: Mapped[int | None] = mapped_column(ForeignKey("member.id", ondelete="SET NULL"), index=True)
    to_address: Mapped[str | None] = mapped_column(String(320))
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    state: Mapped[OutboxState] = mapped_column(_enum(OutboxState), default=OutboxState.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(String(500))




class Admin(db.Model):
    """A volunteer who may compose and send announcements. Password stored only as a strong hash."""

    __tablename__ = "admin"
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    session_version: Mapped[int] = mapped_column(Integer, default=1)

    # Flask-Login's user protocol, written out so the model stays a plain table.
    is_active = True
    is_authenticated = True
    is_anonymous = False

    def get_id(self) -> str:
        return f"{self.id}:{self.session_version}"


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


class Announcement(db.Model):
    """An email to members, from draft to sent (J3, S1). Ids are never reused: archive links name them."""

    __tablename__ = "announcement"
    __table_args__ = {"sqlite_autoincrement": True}
    id: Mapped[int] = mapped_column(primary_key=True)
    subject: Mapped[str] = mapped_column(String(200))
    body_markdown: Mapped[str] = mapped_column(Text)
    only_without_social_media: Mapped[bool] = mapped_column(default=False)
    state: Mapped[AnnouncementState] = mapped_column(
        _enum(AnnouncementState), default=AnnouncementState.DRAFT, index=True
    )
    scheduled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("admin.id", ondelete="SET NULL"))
    is_public: Mapped[bool] = mapped_column(default=False)
    recipient_count: Mapped[int] = mapped_column(Integer, default=0)

    groups: Mapped[list[Group]] = relationship(secondary=announcement_group, order_by=Group.position)


class Delivery(db.Model):
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
    state: Mapped[DeliveryState] = mapped_column(_enum(DeliveryState), default=DeliveryState.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(String(500))


class WorkerHeartbeat(db.Model):
    """When each worker last finished a tick, so /healthz can tell a monitor that sending is alive (P2)."""

    __tablename__ = "worker_heartbeat"
    worker_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    last_tick_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class RateLimitCounter(db.Model):
    """One rate-limit window: how many hits a key has had until the window expires (issue 15).

    Kept in the database every deployment already has, so log-in and join limits hold across
    gunicorn's processes and restarts. Keys name an IP address or a keyed hash of an address,
    never an address itself; expired rows are deleted by the daily housekeeping."""

    __tablename__ = "rate_limit"
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    count: Mapped[int] = mapped_column(Integer)


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


class BounceMessage(db.Model):
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
    outcome: Mapped[BounceOutcome | None] = mapped_column(_enum(BounceOutcome))
    detail: Mapped[str | None] = mapped_column(String(500))
    delivery_id: Mapped[int | None] = mapped_column(ForeignKey("delivery.id", ondelete="SET NULL"))
    outbox_id: Mapped[int | None] = mapped_column(ForeignKey("outbox.id", ondelete="SET NULL"))


class BounceEvent(db.Model):
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
    kind: Mapped[BounceKind] = mapped_column(_enum(BounceKind))
    reason: Mapped[str] = mapped_column(String(500), default="")
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class AnnouncementTemplate(db.Model):
    """A reusable starting point for an announcement: subject and Markdown with personal fields (issue 9)."""

    __tablename__ = "announcement_template"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    subject: Mapped[str] = mapped_column(String(200))
    body_markdown: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Document(db.Model):
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
