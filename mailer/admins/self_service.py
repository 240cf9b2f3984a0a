"""What every admin does for themselves (V4): change their password or email address, or reset a forgotten
password by email. Links are rows in admin_link (see mailer.admins.links)."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash

from mailer.admins.accounts import hash_password
from mailer.admins.links import new_admin_link_key, open_link, use_link
from mailer.admins.passwords import MAX_PASSWORD_LENGTH, check_new_password
from mailer.clock import Clock
from mailer.errors import AdminGone, InvalidInput
from mailer.mail.outbox import enqueue_mail
from mailer.mail.tokens import ADMIN_LINK_LIFETIMES, Purpose
from mailer.members.addresses import normalise_address
from mailer.models import Admin, AdminLink, AdminLinkPurpose, MailKind

RESET_LIFETIME = ADMIN_LINK_LIFETIMES[Purpose.PASSWORD_RESET]
EMAIL_CHANGE_LIFETIME = ADMIN_LINK_LIFETIMES[Purpose.EMAIL_CHANGE]


def _set_password(admin: Admin, password: str) -> None:
    check_new_password(password, email=admin.email)
    admin.password_hash = hash_password(password)
    admin.session_version += 1  # every session cookie issued so far stops working


def _end_links(session: Session, admin_id: int, purpose: AdminLinkPurpose, *, clock: Clock) -> None:
    """Older unused links of this kind stop working: only the newest email's link does."""
    session.execute(
        update(AdminLink)
        .where(AdminLink.admin_id == admin_id, AdminLink.purpose == purpose, AdminLink.used_at.is_(None))
        .values(used_at=clock.now())
        .execution_options(synchronize_session=False)
    )


def change_password(session: Session, admin_id: int, current: str, new: str, *, clock: Clock) -> Admin:
    """Change the admin's password. Every other session ends (the version goes up: the caller logs the current
    one in again with the new version). Raises InvalidInput: field "current_password" when the current password
    is wrong, "password" when the new one is too short or too common."""
    admin = session.get(Admin, admin_id, with_for_update=True)
    if admin is None:
        raise AdminGone()
    if len(current) > MAX_PASSWORD_LENGTH or not check_password_hash(admin.password_hash, current):
        raise InvalidInput("Your current password is not right.", field="current_password")
    _set_password(admin, new)
    _end_links(session, admin.id, AdminLinkPurpose.PASSWORD_RESET, clock=clock)
    session.flush()
    return admin


def request_password_reset(session: Session, email: str, *, clock: Clock) -> bool:
    """Queue a reset link (one hour, single use) to the admin with this address, if there is one; the caller
    answers the same either way. True when a mail was queued (for tests and counters, never for the page)."""
    try:
        _address, key = normalise_address(email)
    except InvalidInput:
        return False
    admin = session.scalar(select(Admin).where(Admin.email == key))
    if admin is None:
        return False
    _end_links(session, admin.id, AdminLinkPurpose.PASSWORD_RESET, clock=clock)
    link = AdminLink(
        link_key=new_admin_link_key(), admin_id=admin.id, purpose=AdminLinkPurpose.PASSWORD_RESET,
        created_at=clock.now(), expires_at=clock.now() + RESET_LIFETIME,
    )
    session.add(link)
    session.flush()
    enqueue_mail(session, MailKind.PASSWORD_RESET, clock=clock, to_address=admin.email, payload={"link_id": link.id})
    return True


def check_reset_link(session: Session, secret_key: str, token: str, *, clock: Clock) -> None:
    """Raise LinkUnusable unless the reset link can still be used (to show the form only then)."""
    open_link(session, secret_key, AdminLinkPurpose.PASSWORD_RESET, token, clock=clock)


def reset_password(session: Session, secret_key: str, token: str, password: str, *, clock: Clock) -> Admin:
    """Set a new password from a reset link; every session of the admin ends. Raises LinkUnusable or
    InvalidInput (field "password"); nothing changes then."""
    link = open_link(session, secret_key, AdminLinkPurpose.PASSWORD_RESET, token, clock=clock)
    admin = session.get(Admin, link.admin_id, with_for_update=True)
    if admin is None:
        raise AdminGone()
    check_new_password(password, email=admin.email)
    use_link(session, link, now=clock.now())
    _set_password(admin, password)
    session.flush()
    return admin


def request_email_change(session: Session, admin_id: int, new_email: str, *, clock: Clock) -> str:
    """Queue a confirmation link (24 hours, single use) to the new address; nothing changes until it is followed.
    Returns the new address as it will be kept. Raises InvalidInput (field "email")."""
    admin = session.get(Admin, admin_id)
    if admin is None:
        raise AdminGone()
    _address, key = normalise_address(new_email)
    if key == admin.email:
        raise InvalidInput("This is already your email address.", field="email")
    if session.scalar(select(Admin.id).where(Admin.email == key)) is not None:
        raise InvalidInput("Another admin already uses this email address.", field="email")
    _end_links(session, admin.id, AdminLinkPurpose.EMAIL_CHANGE, clock=clock)
    link = AdminLink(
        link_key=new_admin_link_key(), admin_id=admin.id, purpose=AdminLinkPurpose.EMAIL_CHANGE, new_email=key,
        created_at=clock.now(), expires_at=clock.now() + EMAIL_CHANGE_LIFETIME,
    )
    session.add(link)
    session.flush()
    enqueue_mail(session, MailKind.EMAIL_CHANGE, clock=clock, to_address=key, payload={"link_id": link.id})
    return key


def check_email_link(session: Session, secret_key: str, token: str, *, clock: Clock) -> str:
    """The new address a confirmation link is for; raises LinkUnusable when it cannot be used."""
    link = open_link(session, secret_key, AdminLinkPurpose.EMAIL_CHANGE, token, clock=clock)
    return link.new_email or ""


def confirm_email_change(session: Session, secret_key: str, token: str, *, clock: Clock) -> Admin:
    """The admin's address becomes the confirmed one; the old address is told (a mail with no link).
    Raises LinkUnusable, or InvalidInput when another admin took the address meanwhile."""
    link = open_link(session, secret_key, AdminLinkPurpose.EMAIL_CHANGE, token, clock=clock)
    admin = session.get(Admin, link.admin_id, with_for_update=True)
    if admin is None or not link.new_email:
        raise AdminGone()
    if session.scalar(select(Admin.id).where(Admin.email == link.new_email, Admin.id != admin.id)) is not None:
        raise InvalidInput("Another admin already uses this email address.", field="email")
    use_link(session, link, now=clock.now())
    old = admin.email
    admin.email = link.new_email
    _end_links(session, admin.id, AdminLinkPurpose.PASSWORD_RESET, clock=clock)  # sent to the old address
    session.flush()
    enqueue_mail(session, MailKind.EMAIL_CHANGED, clock=clock, to_address=old)
    return admin
