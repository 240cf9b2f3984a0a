"""Admin accounts: creation and password checks. Passwords are kept only as scrypt hashes."""

from __future__ import annotations

import functools
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from mailer.clock import Clock
from mailer.errors import InvalidInput
from mailer.members.addresses import normalise_address
from mailer.models import Admin, AdminRole

MIN_PASSWORD_LENGTH = 12
# What `flask seed-dev` creates for trying mailer out; published in the README, so never for real use.
DEV_ADMIN_EMAIL = "admin@forum.example"
DEV_ADMIN_PASSWORD = "change-me-please"
# The work factor of new password hashes: werkzeug's scrypt defaults (n=2**15, r=8, p=1), about 0.1 s a hash.
# The test suite lowers it, as Django's documentation advises for tests (each stored hash names its own
# parameters, so checking a hash follows whatever made it).
PASSWORD_HASH_METHOD = "scrypt"


def hash_password(password: str) -> str:
    """The stored form of a password: the one place new password hashes are made."""
    return generate_password_hash(password, method=PASSWORD_HASH_METHOD)


@functools.cache
def _timing_hash(method: str) -> str:
    """Checked against when the account does not exist, so both paths take the same time (made at first use,
    not at import)."""
    return generate_password_hash("not-a-real-password-just-timing", method=method)


def create_admin(
    session: Session, email: str, password: str, *, clock: Clock, role: AdminRole = AdminRole.OWNER
) -> Admin:
    """Create an admin, or reset the password of an existing one (signing them out everywhere), with `role`.

    `create-admin` on the server makes owners, so whoever holds the server can always get back in (V4).
    Raises InvalidInput for a bad address or a short password."""
    _address, key = normalise_address(email)
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(f"The password must be at least {MIN_PASSWORD_LENGTH} characters long.", field="password")
    if len(password) > 1000:
        raise InvalidInput("The password is too long.", field="password")
    admin = session.scalar(select(Admin).where(Admin.email == key))
    hashed = hash_password(password)
    if admin is None:
        admin = Admin(email=key, password_hash=hashed, created_at=clock.now(), session_version=1, role=role)
        session.add(admin)
    else:
        admin.password_hash = hashed
        admin.session_version += 1
        admin.role = role
    session.flush()
    return admin


def authenticate(session: Session, email: str, password: str, *, clock: Clock) -> Admin | None:
    """The admin whose address and password match, or None (the caller says only 'not recognised')."""
    key = (email or "").strip().lower()
    admin = session.scalar(select(Admin).where(Admin.email == key)) if key and len(key) <= 320 else None
    if admin is None or len(password or "") > 1000:
        check_password_hash(_timing_hash(PASSWORD_HASH_METHOD), password[:1000] if password else "")
        return None
    if not check_password_hash(admin.password_hash, password):
        return None
    admin.last_login_at = clock.now()
    return admin


def find_admin_for_session(
    session: Session,
    admin_id: int,
    version: int,
    *,
    last_seen_at: datetime | None,
    now: datetime,
    idle: timedelta,
) -> Admin | None:
    """The admin a login session names, or None when that session has ended: logged out, the
    password changed or reset (each bumps session_version, issue 15), or left idle longer than `idle`."""
    if last_seen_at is None or now - last_seen_at > idle:
        return None
    admin = session.get(Admin, admin_id)
    if admin is None or admin.session_version != version:
        return None
    return admin


def end_admin_sessions(session: Session, admin_id: int) -> None:
    """Log an admin out everywhere: every session cookie issued so far stops working (issue 15).

    One conditional UPDATE, so a copied cookie is refused by every web process at its next request."""
    session.execute(
        update(Admin).where(Admin.id == admin_id).values(session_version=Admin.session_version + 1)
        .execution_options(synchronize_session=False)
    )


def find_admins_with_password(session: Session, password: str) -> list[str]:
    """Addresses of the admins whose password is `password` (for `check`: the published development one)."""
    return [
        admin.email
        for admin in session.scalars(select(Admin).order_by(Admin.id))
        if check_password_hash(admin.password_hash, password)
    ]
