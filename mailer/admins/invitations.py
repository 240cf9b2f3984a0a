"""Invitations (V4): an owner invites an address with a role; the invitee follows the emailed link, chooses a
password and becomes an admin. The link works once, for 72 hours, unless the owner withdraws it or sends it
again (which replaces it). See mailer.admins.links for why a row and a signed token."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session

from mailer.admins.accounts import hash_password
from mailer.admins.links import EXPIRED, USED, key_from_token, new_admin_link_key
from mailer.admins.passwords import check_new_password
from mailer.clock import Clock
from mailer.errors import AdminGone, InvalidInput, LinkUnusable
from mailer.mail.outbox import enqueue_mail
from mailer.mail.tokens import ADMIN_LINK_LIFETIMES, Purpose
from mailer.members.addresses import normalise_address
from mailer.models import Admin, AdminInvitation, AdminRole, MailKind

INVITATION_LIFETIME = ADMIN_LINK_LIFETIMES[Purpose.ADMIN_INVITATION]
WITHDRAWN = "This invitation was withdrawn. Ask the owner who invited you to send a new one."


@dataclass(frozen=True)
class PendingInvitation:
    """An invitation not yet accepted or withdrawn, as the admins page lists it."""

    id: int
    email: str
    role: AdminRole
    sent_at: datetime
    expires_at: datetime
    expired: bool


def _send(session: Session, invitation: AdminInvitation, *, clock: Clock) -> None:
    """A fresh key and 72 hours from now, and the mail queued in the caller's transaction (S6)."""
    invitation.link_key = new_admin_link_key()
    invitation.created_at = clock.now()
    invitation.expires_at = clock.now() + INVITATION_LIFETIME
    session.flush()
    enqueue_mail(
        session, MailKind.ADMIN_INVITATION, clock=clock, to_address=invitation.email,
        payload={"link_id": invitation.id},
    )


def invite_admin(
    session: Session, email: str, role: AdminRole, *, invited_by_id: int | None, clock: Clock
) -> AdminInvitation:
    """Invite `email` as `role` and queue the mail. An address already invited gets the new role and a new link
    (the older one stops working). Raises InvalidInput (field "email") for a bad address or an existing admin."""
    _address, key = normalise_address(email)
    if session.scalar(select(Admin.id).where(Admin.email == key)) is not None:
        raise InvalidInput("There is already an admin with this email address.", field="email")
    invitation = session.scalar(
        select(AdminInvitation).where(
            AdminInvitation.email == key, AdminInvitation.used_at.is_(None), AdminInvitation.withdrawn_at.is_(None)
        )
    )
    if invitation is None:
        invitation = AdminInvitation(email=key, role=role, invited_by_id=invited_by_id)
        session.add(invitation)
    invitation.role, invitation.invited_by_id = role, invited_by_id
    _send(session, invitation, clock=clock)
    return invitation


def _pending(session: Session, invitation_id: int) -> AdminInvitation:
    invitation = session.get(AdminInvitation, invitation_id, with_for_update=True)
    if invitation is None or invitation.used_at is not None or invitation.withdrawn_at is not None:
        raise AdminGone("That invitation has already been accepted or withdrawn.")
    return invitation


def resend_invitation(session: Session, invitation_id: int, *, clock: Clock) -> AdminInvitation:
    """Send the invitation again with a new link, valid 72 hours from now; the older link stops working."""
    invitation = _pending(session, invitation_id)
    _send(session, invitation, clock=clock)
    return invitation


def withdraw_invitation(session: Session, invitation_id: int, *, clock: Clock) -> AdminInvitation:
    """The link stops working at once (a mail not yet sent is dropped)."""
    invitation = _pending(session, invitation_id)
    invitation.withdrawn_at = clock.now()
    return invitation


def list_pending_invitations(session: Session, *, clock: Clock) -> list[PendingInvitation]:
    now = clock.now()
    rows = session.scalars(
        select(AdminInvitation)
        .where(AdminInvitation.used_at.is_(None), AdminInvitation.withdrawn_at.is_(None))
        .order_by(AdminInvitation.created_at, AdminInvitation.id)
    )
    return [
        PendingInvitation(row.id, row.email, row.role, row.created_at, row.expires_at, now >= row.expires_at)
        for row in rows
    ]


def open_invitation(session: Session, secret_key: str, token: str, *, clock: Clock) -> AdminInvitation:
    """The invitation a link names, while it can still be accepted. Raises LinkUnusable saying why not."""
    key = key_from_token(secret_key, Purpose.ADMIN_INVITATION, token, clock=clock)
    invitation = session.scalar(select(AdminInvitation).where(AdminInvitation.link_key == key))
    if invitation is None:
        raise LinkUnusable("This invitation link has been replaced by a newer one. Use the link in the latest email.")
    if invitation.withdrawn_at is not None:
        raise LinkUnusable(WITHDRAWN)
    if invitation.used_at is not None:
        raise LinkUnusable(USED + " If you have already set your password, log in.")
    if clock.now() >= invitation.expires_at:
        raise LinkUnusable(EXPIRED + " Ask the owner who invited you to send it again.")
    return invitation


def accept_invitation(session: Session, secret_key: str, token: str, password: str, *, clock: Clock) -> Admin:
    """Make the invited admin with the chosen password. Raises LinkUnusable (the link cannot be used) or
    InvalidInput (field "password": too short or too common); either way nothing changes."""
    invitation = open_invitation(session, secret_key, token, clock=clock)
    check_new_password(password, email=invitation.email)
    if session.scalar(select(Admin.id).where(Admin.email == invitation.email)) is not None:
        raise LinkUnusable("There is already an admin with this email address. Log in instead.")
    now = clock.now()
    taken = cast(CursorResult[Any], session.execute(
        update(AdminInvitation)
        .where(
            AdminInvitation.id == invitation.id,
            AdminInvitation.used_at.is_(None),
            AdminInvitation.withdrawn_at.is_(None),
        )
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    ))
    if taken.rowcount != 1:
        raise LinkUnusable(USED)
    invitation.used_at = now
    admin = Admin(
        email=invitation.email,
        password_hash=hash_password(password),
        created_at=now,
        session_version=1,
        role=invitation.role,
    )
    session.add(admin)
    session.flush()
    return admin
