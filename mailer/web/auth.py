"""Flask-Login wiring: load an admin from the session cookie, but only while that session lives (issue 15).

The cookie names the admin and their session_version; log-out, a new password and a reset bump
the version, so a copied cookie stops working everywhere at once. The cookie also carries when
the admin was last seen (signed with SECRET_KEY like the rest of it): after MAILER_ADMIN_IDLE_MINUTES
without a request the admin logs in again. The app's clock decides, so tests move time with it.

Issue 19: the cookie also names a server-side session row (mailer.admins.sessions), which can be ended from
the sessions page and ends on its own 7 days after the log-in. With two-step login on, the password alone only
marks the browser as half-way (PENDING_KEY); the code page finishes the log-in."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from flask import Blueprint, Response, render_template, request, session
from flask.typing import ResponseReturnValue
from flask_sqlalchemy.session import Session as SessionClass

from mailer.admins.accounts import find_admin_for_session
from mailer.admins.audit import (
    USER_AGENT_MAX,
    PendingAudit,
    expect_audit,
    forget_audit,
    listen_for_audit,
    pending_audit,
    record_audit,
    record_failed_login,
    record_pending,
)
from mailer.admins.permissions import may, object_of, permission_for
from mailer.admins.sessions import find_live_session, start_session
from mailer.extensions import db, login_manager
from mailer.models import Admin
from mailer.transaction import transaction
from mailer.web.context import clock, current_settings
from mailer.web.libs import current_user, login_user, unauthorized

log = logging.getLogger(__name__)

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


# --- roles and the audit log (V4, V5, issue 19) ------------------------------------------------------
# Every admin blueprint calls protect(): before each request the permission table decides (403 with the
# admin menu otherwise), and an audited action is attached to the request's session to be recorded when
# the view commits. The role is read from the database with the admin on every request, so a changed role
# counts from the admin's next request.


def request_facts() -> dict[str, str | None]:
    """Where a request came from, as the audit log keeps it."""
    return {"ip": request.remote_addr, "user_agent": request.user_agent.string or None}


def may_use(endpoint: str) -> bool:
    """For templates (`may('admin.members')`): whether the logged-in admin may use `endpoint`."""
    return bool(current_user.is_authenticated) and may(current_user.role, endpoint)


def check_permission() -> ResponseReturnValue | None:
    permission = permission_for(request.endpoint)
    if permission is not None and permission.public:
        return None
    if not current_user.is_authenticated:
        return unauthorized()
    if permission is None or not permission.allows(current_user.role):
        log.warning("admin %d (%s): refused %s", current_user.id, current_user.role.value, request.endpoint)
        return render_template("admin/forbidden.html"), 403
    if permission.audit is not None and (request.method == "POST" or permission.audit_get):
        action = permission.audit_action(request.view_args or {}, request.form)
        if action:
            kind, object_id = object_of(request.view_args or {}) or (None, None)
            facts = request_facts()
            expect_audit(db.session(), PendingAudit(
                admin_id=current_user.id, admin_email=current_user.email, action=action,
                ip_address=facts["ip"], user_agent=(facts["user_agent"] or "")[:USER_AGENT_MAX] or None,
                clock=clock(), object_type=kind, object_id=object_id, creates=permission.creates,
            ))
    return None


def record_audited_download(response: Response) -> Response:
    """A download (the member export) commits nothing itself: its event is recorded before it streams."""
    pending = pending_audit(db.session())
    if pending is not None and not pending.recorded and request.method == "GET" and response.status_code < 400:
        with transaction(db.session()):
            record_pending(db.session())
    return response


def audit_object(object_type: str, object_id: int | str) -> None:
    """For a view whose object is not in its URL or created by it: name it on this request's audit event."""
    pending = pending_audit(db.session())
    if pending is not None:
        pending.object_type, pending.object_id = object_type, str(object_id)


def forget_pending_audit(exc: BaseException | None) -> None:
    forget_audit(db.session())


def audit_action(admin: Admin, action: str) -> None:
    """In the caller's transaction: an action that is not a view's own (the two-step code page's log-ins)."""
    record_audit(db.session(), actor=admin, action=action, clock=clock(), **request_facts())


def audit_login(admin: Admin | None, typed_email: str) -> None:
    """In the log-in view's transaction: a log-in, or a failed one (naming the admin only if it is one)."""
    if admin is not None:
        record_audit(db.session(), actor=admin, action="logged in", clock=clock(), **request_facts())
    else:
        record_failed_login(db.session(), typed_email, clock=clock(), **request_facts())


def protect(blueprint: Blueprint) -> None:
    """Put a blueprint mounted under /admin behind the log-in, the permission table and the audit log."""
    listen_for_audit(SessionClass)
    blueprint.before_request(check_permission)
    blueprint.after_request(record_audited_download)
    blueprint.teardown_request(forget_pending_audit)
    blueprint.add_app_template_global(may_use, "may")
