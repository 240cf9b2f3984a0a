"""Members, their groups and consent evidence, suppressed addresses and waiting join posts (J1, C1-C3)."""

from __future__ import annotations

import enum
import secrets
from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Column, Date, ForeignKey, Integer, String, Table, Text, event, func
from sqlalchemy.orm import Mapped, mapped_column, relationship

from mailer.extensions import db
from mailer.models.base import Model
from mailer.models.types import UTCDateTime, enum_column


def new_link_key() -> str:
    """A member's random link key: 128 bits, URL-safe, so it needs no escaping in a token."""
    return secrets.token_urlsafe(16)


class MemberStatus(enum.StrEnum):
    PENDING = "pending"
    MEMBER = "member"
    UNSUBSCRIBED = "unsubscribed"


class SocialMedia(enum.StrEnum):
    """The answer to the join form's social-media question (SocialMediaQuestion says which wording)."""

    YES = "yes"
    NO = "no"
    PREFER_NOT_TO_SAY = "prefer_not_to_say"


class SocialMediaQuestion(enum.StrEnum):
    """Which wording of the social-media question an answer was given to (issue 18.9).

    The first wording asked whether they follow the forum on social media: a Facebook user who does not
    follow the forum answered "No". From 0020 the form asks whether they use social media at all."""

    FOLLOWS_FORUM = "follows_forum"
    USES_SOCIAL_MEDIA = "uses_social_media"


CURRENT_SOCIAL_MEDIA_QUESTION = SocialMediaQuestion.USES_SOCIAL_MEDIA
SOCIAL_MEDIA_QUESTIONS = {
    SocialMediaQuestion.FOLLOWS_FORUM: "Do you follow the forum on social media?",
    SocialMediaQuestion.USES_SOCIAL_MEDIA: "Do you use social media, such as Facebook, Instagram or WhatsApp groups?",
}


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
    # How someone agreed when an admin adds them with evidence (V7): one method per channel.
    PHONE = "phone"
    PAPER_FORM = "paper_form"
    IN_PERSON = "in_person"


member_group = Table(
    "member_group",
    db.metadata,
    Column("member_id", ForeignKey("member.id", ondelete="CASCADE"), primary_key=True),
    Column("group_id", ForeignKey("group.id", ondelete="CASCADE"), primary_key=True),
)


class Group(Model):
    """A topic members choose on the join form; announcements can target groups.

    Owners add, rename, reorder and retire groups (V6). A retired group is hidden from the join form,
    the preferences page and the audience picker; its members and past announcements keep it."""

    __tablename__ = "group"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str] = mapped_column(String(300), default="")
    position: Mapped[int] = mapped_column(Integer, default=0)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Member(Model):
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
    status: Mapped[MemberStatus] = mapped_column(enum_column(MemberStatus), default=MemberStatus.PENDING, index=True)
    social_media: Mapped[SocialMedia] = mapped_column(enum_column(SocialMedia), default=SocialMedia.PREFER_NOT_TO_SAY)
    social_media_question: Mapped[SocialMediaQuestion] = mapped_column(
        # Written by this code: the current wording. Written without it (old code during a deploy): the old one.
        enum_column(SocialMediaQuestion), default=CURRENT_SOCIAL_MEDIA_QUESTION, server_default="follows_forum"
    )
    token_version: Mapped[int] = mapped_column(Integer, default=1)
    bounce_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    unsubscribed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_confirmation_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When the one reminder to confirm was queued (issue 20.7): set, it is never sent again.
    confirm_reminder_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    groups: Mapped[list[Group]] = relationship(secondary=member_group, order_by=Group.position)


class MemberDeparture(Model):
    """A member who stopped being one (unsubscribed, suppressed or erased), one row each time.

    Written only by database triggers (migration 0014) in the transaction that ends the membership, so
    a send in progress learns of it before its next write, whatever code path ended it (J4). On
    PostgreSQL the trigger also sends a NOTIFY, read by the sender without a round trip. Ids only grow
    (AUTOINCREMENT): a send remembers the last one it saw. Rows older than a day are purged."""

    __tablename__ = "member_departure"
    __table_args__ = {"sqlite_autoincrement": True}
    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(Integer)  # no foreign key: the member row may be gone (erased)
    left_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=func.now(), index=True)


class ConsentWording(Model):
    """What a person was told when they agreed. Never edited: a change is a new version (C1)."""

    __tablename__ = "consent_wording"
    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[int] = mapped_column(Integer, unique=True)
    text: Mapped[str] = mapped_column(Text)
    privacy_notice_version: Mapped[str] = mapped_column(String(50))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ConsentEvent(Model):
    """Append-only evidence of consent given, confirmed or withdrawn (C1)."""

    __tablename__ = "consent_event"
    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("member.id", ondelete="CASCADE"), index=True)
    action: Mapped[ConsentAction] = mapped_column(enum_column(ConsentAction))
    method: Mapped[ConsentMethod] = mapped_column(enum_column(ConsentMethod))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    wording_id: Mapped[int | None] = mapped_column(ForeignKey("consent_wording.id"))
    email: Mapped[str] = mapped_column(String(320))
    ip_address: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(String(300))
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # Recorded by an admin (V7): who, the day the person agreed, and the admin's note. A removed admin's
    # events keep their evidence, with the admin left blank.
    admin_id: Mapped[int | None] = mapped_column(ForeignKey("admin.id", ondelete="SET NULL"))
    agreed_on: Mapped[date | None] = mapped_column(Date)
    note: Mapped[str | None] = mapped_column(String(500))

    wording: Mapped[ConsentWording | None] = relationship()


@event.listens_for(ConsentEvent, "before_update")
def _consent_events_are_append_only(mapper: Any, connection: Any, target: ConsentEvent) -> None:
    raise RuntimeError("consent events are append-only (C1)")


@event.listens_for(ConsentWording, "before_update")
def _consent_wording_is_never_edited(mapper: Any, connection: Any, target: ConsentWording) -> None:
    raise RuntimeError("consent wording is versioned, never edited (C1)")


class AddressChange(Model):
    """A new email address waiting to be confirmed at that address before it replaces the old one (V7).

    Links name the random key, never the member or the address. Kept after confirming (with
    confirmed_at) so a second press of the link is harmless; deleted with the member."""

    __tablename__ = "address_change"
    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True, default=new_link_key)
    member_id: Mapped[int] = mapped_column(ForeignKey("member.id", ondelete="CASCADE"), index=True)
    new_email: Mapped[str] = mapped_column(String(320))
    new_email_key: Mapped[str] = mapped_column(String(320))
    admin_id: Mapped[int | None] = mapped_column(ForeignKey("admin.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Suppression(Model):
    """An address that must never be mailed, kept only as a keyed hash (C3)."""

    __tablename__ = "suppression"
    id: Mapped[int] = mapped_column(primary_key=True)
    address_hash: Mapped[str] = mapped_column(String(64), unique=True)
    reason: Mapped[str] = mapped_column(String(30))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class JoinRequest(Model):
    """A join form post waiting for the worker (J1). The web request only checks the form and
    stores this row, the same work whoever the address belongs to, so the time the page takes
    tells nobody whether someone is a member, pending or suppressed. Deleted once processed."""

    __tablename__ = "join_request"
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320))
    name: Mapped[str] = mapped_column(String(100), default="")
    social_media: Mapped[SocialMedia] = mapped_column(enum_column(SocialMedia))
    social_media_question: Mapped[SocialMediaQuestion] = mapped_column(
        # Written by this code: the current wording. Written without it (old code during a deploy): the old one.
        enum_column(SocialMediaQuestion), default=CURRENT_SOCIAL_MEDIA_QUESTION, server_default="follows_forum"
    )
    group_ids: Mapped[list[int]] = mapped_column(JSON)
    ip_address: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
