"""Admin accounts (V4)."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Integer, String
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
