"""Two-step login (V4, issue 19 item 3): an authenticator app (TOTP, RFC 6238 via pyotp) and one-time recovery codes.

An admin sets it up by scanning a secret and typing a code from their app; only then is it on. A code is accepted
for the time-step it belongs to (one step either side, for clocks a little apart) and never again: the last step
used is stored, so a code seen over someone's shoulder cannot be replayed. Recovery codes are kept only as SHA-256
hashes (they are long random values, so a fast hash is enough) and each works once. An owner can require two-step
login for everyone (the one-row security_policy table)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

import pyotp
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from mailer.clock import Clock
from mailer.errors import InvalidInput, NotPermitted, WrongState
from mailer.models import Admin, AdminRole, RecoveryCode, SecurityPolicy

RECOVERY_CODE_COUNT = 10
# Lower-case letters and digits without the ones people confuse (0/o, 1/l/i).
RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
RECOVERY_CODE_LENGTH = 10
# Codes from one time-step before or after now are accepted too (a phone's clock a little out).
VALID_WINDOW = 1
POLICY_ID = 1

WRONG_CODE = "That code is not right. Check your authenticator app and try again, or use a recovery code."


@dataclass(frozen=True)
class SecondStep:
    """What let the admin in at the second step: "code" (the app) or "recovery" (a recovery code)."""

    method: str
    recovery_codes_left: int


def is_on(admin: Admin) -> bool:
    return admin.two_step_enabled_at is not None and admin.totp_secret is not None


def grouped(secret: str) -> str:
    """The secret in groups of four, for typing into an app by hand."""
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


def start_set_up(admin: Admin) -> str:
    """The secret to show while two-step login is being set up (made once, kept until confirmed or replaced)."""
    if is_on(admin):
        raise WrongState("Two-step login is already on.")
    if not admin.totp_secret:
        admin.totp_secret = pyotp.random_base32()
    return admin.totp_secret


def provisioning_uri(admin: Admin, secret: str, *, issuer: str) -> str:
    """The otpauth:// address the QR code holds: the app shows the issuer (the forum) and the admin's address."""
    return pyotp.TOTP(secret).provisioning_uri(name=admin.email, issuer_name=issuer[:100] or "mailer")


def confirm_set_up(session: Session, admin: Admin, code: str, *, clock: Clock) -> list[str]:
    """Turn two-step login on once `code` from the app matches; returns the new recovery codes (shown once)."""
    if is_on(admin):
        raise WrongState("Two-step login is already on.")
    if not admin.totp_secret:
        raise WrongState("Start setting up two-step login again: the page has changed.")
    now = clock.now()
    if not _accept_totp(admin, code, now):
        raise InvalidInput(
            "That code is not right. Check the app shows this forum and your address, and type the newest code.",
            field="code",
        )
    admin.two_step_enabled_at = now
    return make_recovery_codes(session, admin, clock=clock)


def make_recovery_codes(session: Session, admin: Admin, *, clock: Clock) -> list[str]:
    """Replace the admin's recovery codes with ten new ones; returns them (only their hashes are kept)."""
    if not is_on(admin):
        raise WrongState("Turn on two-step login first.")
    session.execute(delete(RecoveryCode).where(RecoveryCode.admin_id == admin.id))
    codes = ["".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(RECOVERY_CODE_LENGTH))
             for _ in range(RECOVERY_CODE_COUNT)]
    now = clock.now()
    session.add_all(RecoveryCode(admin_id=admin.id, code_hash=_hash(c), created_at=now) for c in codes)
    session.flush()
    return [f"{c[:5]}-{c[5:]}" for c in codes]


def check_second_step(session: Session, admin: Admin, code: str, *, clock: Clock) -> SecondStep:
    """Accept a code from the app (6 digits) or an unused recovery code, or raise InvalidInput (field "code")."""
    if not is_on(admin):
        raise WrongState("Two-step login is not on for this account.")
    typed = _normalise(code)
    now = clock.now()
    if typed.isdigit() and len(typed) == 6:
        if _accept_totp(admin, typed, now):
            return SecondStep("code", count_recovery_codes(session, admin.id))
        raise InvalidInput(WRONG_CODE, field="code")
    if len(typed) != RECOVERY_CODE_LENGTH:
        raise InvalidInput(WRONG_CODE, field="code")
    row = session.scalar(
        select(RecoveryCode).where(
            RecoveryCode.admin_id == admin.id, RecoveryCode.code_hash == _hash(typed), RecoveryCode.used_at.is_(None)
        )
    )
    if row is None:
        raise InvalidInput(WRONG_CODE, field="code")
    row.used_at = now
    session.flush()
    return SecondStep("recovery", count_recovery_codes(session, admin.id))


def count_recovery_codes(session: Session, admin_id: int) -> int:
    """How many unused recovery codes the admin has left."""
    rows = session.scalars(
        select(RecoveryCode.id).where(RecoveryCode.admin_id == admin_id, RecoveryCode.used_at.is_(None))
    ).all()
    return len(rows)


def turn_off(session: Session, admin: Admin, code: str, *, clock: Clock) -> None:
    """Turn two-step login off, after a current code (or a recovery code); refused while it is required for all."""
    if get_policy(session).require_two_step:
        raise InvalidInput("An owner has made two-step login required for everyone, so it cannot be turned off.")
    check_second_step(session, admin, code, clock=clock)
    _clear(session, admin)


def reset(session: Session, email: str) -> Admin:
    """For the server's command line, when an admin has lost their phone: two-step login off, codes gone.

    The caller ends the admin's sessions too. Raises InvalidInput when no admin has that address."""
    admin = session.scalar(select(Admin).where(Admin.email == (email or "").strip().lower()))
    if admin is None:
        raise InvalidInput("There is no admin with that email address.")
    _clear(session, admin)
    return admin


def get_policy(session: Session) -> SecurityPolicy:
    """The one security_policy row (made by migration 0016; made again here if someone deleted it)."""
    policy = session.get(SecurityPolicy, POLICY_ID)
    if policy is None:
        policy = SecurityPolicy(id=POLICY_ID, require_two_step=False)
        session.add(policy)
        session.flush()
    return policy


def set_require_two_step(session: Session, actor: Admin, required: bool, *, clock: Clock) -> SecurityPolicy:
    """An owner requires (or stops requiring) two-step login for every admin. The owner turns it on for
    themselves first, so nobody requires of others what they have not done."""
    if actor.role is not AdminRole.OWNER:
        raise NotPermitted("Only an owner can change this.")
    if required and not is_on(actor):
        raise InvalidInput("Turn on two-step login for your own account first.", field="require_two_step")
    policy = get_policy(session)
    policy.require_two_step = required
    policy.updated_at = clock.now()
    session.flush()
    return policy


def needs_set_up(session: Session, admin: Admin) -> bool:
    """True when two-step login is required for everyone and this admin has not set it up yet."""
    return not is_on(admin) and get_policy(session).require_two_step


def _clear(session: Session, admin: Admin) -> None:
    admin.totp_secret = None
    admin.totp_last_step = None
    admin.two_step_enabled_at = None
    session.execute(delete(RecoveryCode).where(RecoveryCode.admin_id == admin.id))
    session.flush()


def _accept_totp(admin: Admin, code: str, now: datetime) -> bool:
    """True (and the step remembered) when `code` belongs to a step near now that has not been used yet."""
    typed = _normalise(code)
    if not (typed.isdigit() and len(typed) == 6) or not admin.totp_secret:
        return False
    totp = pyotp.TOTP(admin.totp_secret)
    current = totp.timecode(now)
    for step in range(current - VALID_WINDOW, current + VALID_WINDOW + 1):
        if admin.totp_last_step is not None and step <= admin.totp_last_step:
            continue
        if hmac.compare_digest(totp.generate_otp(step), typed):
            admin.totp_last_step = step
            return True
    return False


def _normalise(code: str) -> str:
    return "".join(ch for ch in (code or "")[:100] if ch.isalnum()).lower()


def _hash(code: str) -> str:
    return hashlib.sha256(_normalise(code).encode("ascii", "replace")).hexdigest()
