"""What the running service keeps for itself: worker heartbeats and rate-limit counters (P2, issue 15)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from mailer.models.base import Model
from mailer.models.types import UTCDateTime


class WorkerHeartbeat(Model):
    """When each worker last finished a tick, so /healthz can tell a monitor that sending is alive (P2)."""

    __tablename__ = "worker_heartbeat"
    worker_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    last_tick_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class RateLimitCounter(Model):
    """One rate-limit window: how many hits a key has had until the window expires (issue 15).

    Kept in the database every deployment already has, so log-in and join limits hold across
    gunicorn's processes and restarts. Keys name an IP address or a keyed hash of an address,
    never an address itself; expired rows are deleted by the daily housekeeping."""

    __tablename__ = "rate_limit"
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    count: Mapped[int] = mapped_column(Integer)
