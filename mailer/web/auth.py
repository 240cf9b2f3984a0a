"""Flask-Login wiring: load an admin from the session cookie, but only while that session lives (issue 15).

The cookie names the admin and their session_version; log-out, a new password and a reset bump
the version, so a copied cookie stops working everywhere at once. The cookie also carries when
the admin was last seen (signed with SECRET_KEY like the rest of it): after MAILER_ADMIN_IDLE_MINUTES
without a request the admin logs in again. The app's clock decides, so tests move time with it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flask import session

from mailer.admins.accounts import find_admin_for_session
from mailer.extensions import db, login_manager
from mailer.models import Admin
from mailer.web.context import clock, current_settings

LAST_SEEN_KEY = "admin_seen_at"
# The last-seen time is rewritten at most this often, not on every request.
LAST_SEEN_RESOLUTION = timedelta(minutes=1)


def idle_limit() -> timedelta:
    return current_settings().admin_idle


def mark_seen(now: datetime) -> None:
    """Record activity in the session (at log-in, and as the admin keeps using the pages)."""
    session[LAST_SEEN_KEY] = int(now.timestamp())


def last_seen() -> datetime | None:
    value = session.get(LAST_SEEN_KEY)
    if not isinstance(value, int) or isinstance(value, bool):
        return None
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def load_admin(user_id: str) -> Admin | None:
    try:
        admin_id, version = (int(part) for part in user_id.split(":", 1))
    except ValueError:
        return None
    now = clock().now()
    seen = last_seen()
    admin = find_admin_for_session(db.session(), admin_id, version, last_seen_at=seen, now=now, idle=idle_limit())
    if admin is not None and (seen is None or now - seen >= LAST_SEEN_RESOLUTION):
        mark_seen(now)
    return admin


# Registered by a call, not as a decorator: LoginManager is untyped, so a decorator would untype load_admin.
login_manager.user_loader(load_admin)
