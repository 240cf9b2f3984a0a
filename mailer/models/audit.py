"""The audit log (V5): who did what to which object, when and from where. Append-only."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from mailer.models.base import Model
from mailer.models.types import UTCDateTime


class AuditEvent(Model):
    """One thing an admin did (or tried: a failed log-in), written in the same transaction as the action.

    The admin is named by id *and* address, with no foreign key: removing an admin keeps every row that
    names them. Objects are named by type and id only; a member is never named by their address.
    Rows are never updated; only the daily housekeeping deletes those past the retention period."""

    __tablename__ = "audit_event"
    # Paged by id, newest first. Only the oldest rows are ever deleted, so SQLite never hands an id out twice
    # out of order (it reuses only the highest id, and only once every row is gone).
    __table_args__ = (Index("ix_audit_event_admin_id_id", "admin_id", "id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    admin_id: Mapped[int | None] = mapped_column(Integer)
    admin_email: Mapped[str] = mapped_column(String(320), default="")
    action: Mapped[str] = mapped_column(String(100), index=True)
    object_type: Mapped[str | None] = mapped_column(String(40))
    object_id: Mapped[str | None] = mapped_column(String(100))
    ip_address: Mapped[str | None] = mapped_column(String(100))
    user_agent: Mapped[str | None] = mapped_column(String(300))
