"""Admin accounts (V4)."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from mailer.models.base import Model
from mailer.models.types import UTCDateTime, enum_column


class AdminRole(enum.StrEnum):
    """What an admin may do (V4). Owners run the service; senders mail members; writers only draft."""

    OWNER = "owner"
    SENDER = "sender"
    WRITER = "writer"


class Admin(Model):
    """A volunteer who may compose and send announcements. Password stored only as a strong hash."""

    __tablename__ = "admin"
    # Ids never reused on SQLite: a login cookie names the id, so a removed admin's old cookie must not fit a
    # newer admin (migration 0017).
    __table_args__ = {"sqlite_autoincrement": True}
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    session_version: Mapped[int] = mapped_column(Integer, default=1)
    role: Mapped[AdminRole] = mapped_column(enum_column(AdminRole), default=AdminRole.OWNER, server_default="owner")

    # Flask-Login's user protocol, written out so the model stays a plain table.
    is_active = True
    is_authenticated = True
    is_anonymous = False

    def get_id(self) -> str:
        return f"{self.id}:{self.session_version}"


class AdminInvitation(Model):
    """An owner's invitation to a new admin (V4, issue 19): a single-use link, sent through the outbox.

    The link is a signed token naming `link_key` (random, replaced when the invitation is sent again, so the
    older link stops working); it works until `expires_at`, once (`used_at`), unless withdrawn."""

    __tablename__ = "admin_invitation"
    __table_args__ = {"sqlite_autoincrement": True}  # a queued mail names the row's id
    id: Mapped[int] = mapped_column(primary_key=True)
    link_key: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str] = mapped_column(String(320), index=True)
    role: Mapped[AdminRole] = mapped_column(enum_column(AdminRole))
    invited_by_id: Mapped[int | None] = mapped_column(ForeignKey("admin.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    withdrawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AdminLinkPurpose(enum.StrEnum):
    """What an emailed admin link does."""

    PASSWORD_RESET = "password_reset"
    EMAIL_CHANGE = "email_change"


class AdminLink(Model):
    """A single-use link emailed to an existing admin: a password reset, or confirming a new address (V4).

    As with invitations, the token names `link_key`; the row says until when it works and whether it was used.
    Removing the admin removes their links."""

    __tablename__ = "admin_link"
    __table_args__ = {"sqlite_autoincrement": True}  # a queued mail names the row's id
    id: Mapped[int] = mapped_column(primary_key=True)
    link_key: Mapped[str] = mapped_column(String(64), unique=True)
    admin_id: Mapped[int] = mapped_column(ForeignKey("admin.id", ondelete="CASCADE"), index=True)
    purpose: Mapped[AdminLinkPurpose] = mapped_column(enum_column(AdminLinkPurpose))
    new_email: Mapped[str | None] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
