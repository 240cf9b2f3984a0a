"""Emailed admin links (V4): invitations, password resets and new addresses to confirm.

Why a row per link and a signed token naming its random key (not a token bound to the password hash): the
outbox builds each mail when it sends it (S6), so the link must be made again from what the database holds,
and the database holds no token and no hash of a password. The row's random link_key is worthless without
SECRET_KEY (the token's signature), the row makes the link single use (used_at, set by one conditional
UPDATE so two clicks cannot both succeed), lets an owner withdraw an invitation, and sending again replaces
the key so the older link stops working. The token carries no address and no admin id."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session

from mailer.clock import Clock
from mailer.errors import LinkUnusable, TokenExpired, TokenInvalid
from mailer.mail.tokens import ADMIN_LINK_LIFETIMES, Purpose, read_token
from mailer.models import Admin, AdminInvitation, AdminLink, AdminLinkPurpose, MailKind

# Which mail carries which link, and the purpose its token is signed for.
MAIL_PURPOSES = {
    MailKind.ADMIN_INVITATION: Purpose.ADMIN_INVITATION,
    MailKind.PASSWORD_RESET: Purpose.PASSWORD_RESET,
    MailKind.EMAIL_CHANGE: Purpose.EMAIL_CHANGE,
}
LINK_PURPOSES = {
    AdminLinkPurpose.PASSWORD_RESET: Purpose.PASSWORD_RESET,
    AdminLinkPurpose.EMAIL_CHANGE: Purpose.EMAIL_CHANGE,
}

USED = "This link has already been used. Each link works once."
EXPIRED = "This link has expired."


def new_admin_link_key() -> str:
    """A random key for one emailed link: 192 bits, URL-safe."""
    return secrets.token_urlsafe(24)


def key_from_token(secret_key: str, purpose: Purpose, token: str, *, clock: Clock) -> str:
    """The link key a token names. Raises LinkUnusable for a token tampered with, cut short, of another purpose
    or older than the link's lifetime."""
    try:
        link_key, _version = read_token(
            secret_key, purpose, token, clock=clock,
            max_age_seconds=int(ADMIN_LINK_LIFETIMES[purpose].total_seconds()),
        )
    except TokenExpired:
        raise LinkUnusable(EXPIRED) from None
    except TokenInvalid:
        raise LinkUnusable() from None
    return link_key


def live_link_key(session: Session, kind: MailKind, link_id: object, to_address: str) -> str | None:
    """At send time: the key of the link an outbox row of `kind` carries, or None when that link was used,
    withdrawn, replaced or deleted since it was queued, or no longer belongs to `to_address` (the mail is then
    dropped, not sent)."""
    if not isinstance(link_id, int) or isinstance(link_id, bool):
        return None
    if kind is MailKind.ADMIN_INVITATION:
        return session.scalar(
            select(AdminInvitation.link_key).where(
                AdminInvitation.id == link_id,
                AdminInvitation.email == to_address,
                AdminInvitation.used_at.is_(None),
                AdminInvitation.withdrawn_at.is_(None),
            )
        )
    if kind is MailKind.PASSWORD_RESET:
        return session.scalar(
            select(AdminLink.link_key)
            .join(Admin, Admin.id == AdminLink.admin_id)
            .where(AdminLink.id == link_id, AdminLink.used_at.is_(None), Admin.email == to_address)
        )
    if kind is MailKind.EMAIL_CHANGE:
        return session.scalar(
            select(AdminLink.link_key).where(
                AdminLink.id == link_id, AdminLink.used_at.is_(None), AdminLink.new_email == to_address
            )
        )
    return None


def open_link(
    session: Session, secret_key: str, purpose: AdminLinkPurpose, token: str, *, clock: Clock
) -> AdminLink:
    """The unused, unexpired password-reset or new-address link a token names. Raises LinkUnusable."""
    key = key_from_token(secret_key, LINK_PURPOSES[purpose], token, clock=clock)
    link = session.scalar(select(AdminLink).where(AdminLink.link_key == key, AdminLink.purpose == purpose))
    if link is None:
        raise LinkUnusable()
    if link.used_at is not None:
        raise LinkUnusable(USED)
    if clock.now() >= link.expires_at:
        raise LinkUnusable(EXPIRED)
    return link


def use_link(session: Session, link: AdminLink, *, now: datetime) -> None:
    """Mark the link used, once: if another request used it first, raise LinkUnusable and change nothing."""
    done = cast(CursorResult[Any], session.execute(
        update(AdminLink).where(AdminLink.id == link.id, AdminLink.used_at.is_(None)).values(used_at=now)
        .execution_options(synchronize_session=False)
    ))
    if done.rowcount != 1:
        raise LinkUnusable(USED)
    link.used_at = now
