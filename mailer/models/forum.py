"""The forum's own details, set by owners on /admin/settings (V6, R1): one row, each value optional.

A value left empty (NULL) means "as configured" (MAILER_FORUM_NAME and the other keys), so an install
works before anyone opens the page; mailer.members.forum_details lays the stored values over Settings."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from mailer.models.base import Model
from mailer.models.types import UTCDateTime

FORUM_DETAILS_ROW_ID = 1


class ForumDetailsRow(Model):
    """The one row (id 1) of stored forum details; None in a column means the configured value."""

    __tablename__ = "forum_details"
    id: Mapped[int] = mapped_column(primary_key=True)
    forum_name: Mapped[str | None] = mapped_column(String(100))
    contact_address: Mapped[str | None] = mapped_column(String(320))
    privacy_notice_url: Mapped[str | None] = mapped_column(String(500))
    footer_line: Mapped[str | None] = mapped_column(String(200))
    undo_seconds: Mapped[int | None] = mapped_column(Integer)  # None: MAILER_UNDO_SECONDS
    joining_line_1: Mapped[str | None] = mapped_column(String(80))
    joining_line_2: Mapped[str | None] = mapped_column(String(80))
    joining_line_3: Mapped[str | None] = mapped_column(String(80))
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
