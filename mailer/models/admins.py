"""Admin accounts (V4)."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, String, false
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
    # newer admin (migration 0021).
    __table_args__ = {"sqlite_autoincrement": True}
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    session_version: Mapped[int] = mapped_column(Integer, default=1)
    role: Mapped[AdminRole] = mapped_column(enum_column(AdminRole), default=AdminRole.OWNER, server_default="owner")
    # Two-step login (issue 19): the authenticator app's secret (set up but not yet confirmed while
    # two_step_enabled_at is empty), and the last time-step a code was accepted for, so no code works twice.
    totp_secret: Mapped[str | None] = mapped_column(String(64))
    totp_last_step: Mapped[int | None] = mapped_column(Integer)
    two_step_enabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

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

class AdminSession(Model):
    """One log-in: a row per signed-in browser, behind the session cookie (issue 19, item 5).

    A session is live while ended_at is empty, its session_version still matches the admin's (log-out
    everywhere and password changes bump that), and it is younger than the absolute limit (7 days).
    The cookie holds only `key`, a random value; the row holds what the sessions page shows."""

    __tablename__ = "admin_session"
    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    admin_id: Mapped[int] = mapped_column(ForeignKey("admin.id", ondelete="CASCADE"), index=True)
    session_version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    device: Mapped[str] = mapped_column(String(100))
    ip_address: Mapped[str | None] = mapped_column(String(45))


class RecoveryCode(Model):
    """A one-time recovery code for two-step login, kept only as a hash; used_at is set when it is spent."""

    __tablename__ = "recovery_code"
    id: Mapped[int] = mapped_column(primary_key=True)
    admin_id: Mapped[int] = mapped_column(ForeignKey("admin.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class SecurityPolicy(Model):
    """The service's security choices an owner makes: one row, id 1 (issue 19, item 3)."""

    __tablename__ = "security_policy"
    id: Mapped[int] = mapped_column(primary_key=True)
    require_two_step: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
