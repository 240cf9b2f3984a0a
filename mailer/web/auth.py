"""Flask-Login wiring: load an admin from the session cookie, but only while that session lives (issue 15).

The cookie names the admin and their session_version; log-out, a new password and a reset bump
the version, so a copied cookie stops working everywhere at once. The cookie also carries when
the admin was last seen (signed with SECRET_KEY like the rest of it): after MAILER_ADMIN_IDLE_MINUTES
without a request the admin logs in again. The app's clock decides, so tests move time with it.

Issue 19: the cookie also names a server-side session row (mailer.admins.sessions), which can be ended from
the sessions page and ends on its own 7 days after the log-in. With two-step login on, the password alone only
marks the browser as half-way (PENDING_KEY); the code page finishes the log-in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flask import request, session

from mailer.admins.accounts import find_admin_for_session
from mailer.admins.sessions import find_live_session, start_session
from mailer.extensions import db, login_manager
from mailer.models import Admin
from mailer.web.context import clock, current_settings
from mailer.web.libs import login_user

LAST_SEEN_KEY = "admin_seen_at"
# The last-seen time is rewritten at most this often, not on every request.
LAST_SEEN_RESOLUTION = timedelta(minutes=1)
SESSION_KEY = "admin_session"
PENDING_KEY = "two_step_pending"
# How long the code page waits after a right password before the password must be typed again.
PENDING_LIMIT = timedelta(minutes=10)


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
    if admin is None:
        return None
    row = find_live_session(db.session(), admin, current_session_key(), now=now)
    if row is None:
        return None
    if db.session.is_modified(row):
        db.session.commit()
    if seen is None or now - seen >= LAST_SEEN_RESOLUTION:
        mark_seen(now)
    return admin


def begin_session(admin: Admin) -> None:
    """Finish a log-in: a session row on the server, its key and the admin in the cookie.
    The caller commits (the row is added to the current transaction)."""
    row = start_session(
        db.session(), admin, user_agent=request.user_agent.string, ip_address=request.remote_addr, clock=clock()
    )
    session.pop(PENDING_KEY, None)
    login_user(admin)
    session[SESSION_KEY] = row.key
    mark_seen(clock().now())


def current_session_key() -> str | None:
    value = session.get(SESSION_KEY)
    return value if isinstance(value, str) else None


def set_pending(admin: Admin) -> None:
    """The password was right; the admin still has to give a code (the cookie is signed, so this cannot be forged)."""
    session[PENDING_KEY] = {"id": admin.id, "v": admin.session_version, "at": int(clock().now().timestamp())}


def pending_admin() -> Admin | None:
    """The admin half-way through logging in with this browser, or None (never started, or too long ago)."""
    value = session.get(PENDING_KEY)
    if not isinstance(value, dict):
        return None
    try:
        admin_id, version, at = int(value["id"]), int(value["v"]), int(value["at"])
        started = datetime.fromtimestamp(at, UTC)
    except (KeyError, TypeError, ValueError, OverflowError, OSError):
        return None
    if not timedelta(0) <= clock().now() - started <= PENDING_LIMIT:
        return None
    admin = db.session.get(Admin, admin_id)
    if admin is None or admin.session_version != version:
        return None
    return admin


def clear_pending() -> None:
    session.pop(PENDING_KEY, None)


# Registered by a call, not as a decorator: LoginManager is untyped, so a decorator would untype load_admin.
login_manager.user_loader(load_admin)
