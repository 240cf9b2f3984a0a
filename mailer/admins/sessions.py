"""Admin sessions kept on the server (issue 19 item 5): one admin_session row per log-in, behind the cookie.

A session lives while it has not been ended, the admin's session_version is the one it was made with (log-out
everywhere and password changes bump it, issue 15) and it is younger than MAX_AGE, however busy it has been.
An admin sees their own live sessions and ends the others; an owner may end anyone's. Removing an admin deletes
their rows with them (ON DELETE CASCADE), and the role is read from the admin row at every request."""

from __future__ import annotations

import re
import secrets
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from mailer.clock import Clock
from mailer.errors import NotPermitted
from mailer.models import Admin, AdminRole, AdminSession

MAX_AGE = timedelta(days=7)
# last_seen_at is rewritten at most this often, not at every request.
SEEN_RESOLUTION = timedelta(minutes=1)

# (pattern, name), first match wins: the order matters (Edge and Opera say "Chrome" too, Chrome says "Safari").
_BROWSERS = (
    (r"Edg(e|A|iOS)?/", "Edge"),
    (r"OPR/|Opera", "Opera"),
    (r"SamsungBrowser/", "Samsung Internet"),
    (r"Firefox/|FxiOS/", "Firefox"),
    (r"Chrome/|CriOS/|Chromium/", "Chrome"),
    (r"Safari/", "Safari"),
)
_SYSTEMS = (
    (r"iPhone", "iPhone"),
    (r"iPad", "iPad"),
    (r"Android", "Android"),
    (r"Windows", "Windows"),
    (r"CrOS", "ChromeOS"),
    (r"Mac OS X|Macintosh", "Mac"),
    (r"Linux", "Linux"),
)


def device_summary(user_agent: str | None) -> str:
    """A user agent in words, such as "Firefox on Windows"; "Unknown browser" when it says nothing we know."""
    text = (user_agent or "")[:1000]
    browser = next((name for pattern, name in _BROWSERS if re.search(pattern, text)), None)
    system = next((name for pattern, name in _SYSTEMS if re.search(pattern, text)), None)
    if browser and system:
        return f"{browser} on {system}"
    return browser or (f"A browser on {system}" if system else "Unknown browser")


def start_session(
    session: Session, admin: Admin, *, user_agent: str | None, ip_address: str | None, clock: Clock
) -> AdminSession:
    """Record a new log-in; its random key goes in the cookie."""
    now = clock.now()
    row = AdminSession(
        key=secrets.token_urlsafe(32),
        admin_id=admin.id,
        session_version=admin.session_version,
        created_at=now,
        last_seen_at=now,
        device=device_summary(user_agent)[:100],
        ip_address=(ip_address or None) and ip_address[:45],
    )
    session.add(row)
    session.flush()
    return row


def is_live(row: AdminSession, admin: Admin, now: datetime) -> bool:
    return (
        row.ended_at is None
        and row.admin_id == admin.id
        and row.session_version == admin.session_version
        and now - row.created_at < MAX_AGE
    )


def find_live_session(session: Session, admin: Admin, key: str | None, *, now: datetime) -> AdminSession | None:
    """The live session this cookie's key names, or None (ended, too old, or another admin's).
    Notes the admin as seen now (at most once a minute)."""
    if not key or len(key) > 64:
        return None
    row = session.scalar(select(AdminSession).where(AdminSession.key == key))
    if row is None or not is_live(row, admin, now):
        return None
    if now - row.last_seen_at >= SEEN_RESOLUTION:
        row.last_seen_at = now
    return row


def list_live_sessions(session: Session, *, now: datetime, admin_id: int | None = None) -> list[AdminSession]:
    """Live sessions, most recently used first: one admin's, or (admin_id None) everyone's."""
    query = (
        select(AdminSession)
        .join(Admin, Admin.id == AdminSession.admin_id)
        .where(
            AdminSession.ended_at.is_(None),
            AdminSession.session_version == Admin.session_version,
            AdminSession.created_at > now - MAX_AGE,
        )
        .order_by(AdminSession.last_seen_at.desc(), AdminSession.id.desc())
    )
    if admin_id is not None:
        query = query.where(AdminSession.admin_id == admin_id)
    return list(session.scalars(query))


def end_session(session: Session, actor: Admin, session_id: int, *, clock: Clock) -> AdminSession | None:
    """End one session: the actor's own, or anyone's for an owner. None when it had already ended or never was."""
    row = session.get(AdminSession, session_id)
    if row is None:
        return None
    if row.admin_id != actor.id and actor.role is not AdminRole.OWNER:
        raise NotPermitted("You can end only your own sessions.")
    if row.ended_at is not None:
        return None
    row.ended_at = clock.now()
    session.flush()
    return row


def end_session_by_key(session: Session, key: str | None, *, clock: Clock) -> None:
    """End the session a cookie names (log-out); a copy of that cookie stops working too."""
    if key:
        session.execute(
            update(AdminSession).where(AdminSession.key == key, AdminSession.ended_at.is_(None))
            .values(ended_at=clock.now()).execution_options(synchronize_session=False)
        )


def end_other_sessions(session: Session, admin: Admin, keep_key: str | None, *, clock: Clock) -> int:
    """End every session of the admin except the one `keep_key` names; returns how many were ended."""
    query = update(AdminSession).where(AdminSession.admin_id == admin.id, AdminSession.ended_at.is_(None))
    if keep_key:
        query = query.where(AdminSession.key != keep_key)
    result = session.execute(query.values(ended_at=clock.now()).execution_options(synchronize_session=False))
    return int(getattr(result, "rowcount", 0) or 0)


def end_all_sessions(session: Session, admin: Admin, *, clock: Clock) -> int:
    """End every session of the admin (the server's reset-two-step command)."""
    return end_other_sessions(session, admin, None, clock=clock)
