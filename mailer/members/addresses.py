"""Email address checks shared by the join form, imports and suppression."""

from __future__ import annotations

import hashlib
import hmac

from email_validator import EmailNotValidError, validate_email

from mailer.errors import InvalidInput
from mailer.text import has_control_characters

MAX_ADDRESS_LENGTH = 254


def normalise_address(raw: str) -> tuple[str, str]:
    """(address as it will be used, key that decides uniqueness).

    email-validator lowercases only the domain; two spellings of one mailbox must
    still be one member, so the key is the whole address in lower case.
    Raises InvalidInput with a message a person can act on. Never looks up DNS."""
    candidate = (raw or "").strip()
    if not candidate:
        raise InvalidInput("Enter your email address.", field="email")
    if len(candidate) > MAX_ADDRESS_LENGTH or has_control_characters(candidate):
        raise InvalidInput("Enter a valid email address, like name@example.com.", field="email")
    try:
        result = validate_email(candidate, check_deliverability=False)
    except EmailNotValidError:
        raise InvalidInput("Enter a valid email address, like name@example.com.", field="email") from None
    if result.ascii_email is None:
        # Accented letters before the @ need SMTPUTF8, which most mail relays do not offer.
        raise InvalidInput(
            "We cannot send to addresses with accented or non-English letters before the @ yet. "
            "Please use another email address.",
            field="email",
        )
    # An international domain is kept in its ASCII form (xn--...), the form every mail server takes.
    return result.ascii_email, result.ascii_email.lower()


def address_hash(key: bytes, email_key: str) -> str:
    """Keyed hash of a normalised address: lets us recognise it without keeping it (C3)."""
    return hmac.new(key, email_key.encode("utf-8"), hashlib.sha256).hexdigest()


def suppression_key(configured: str, secret_key: str) -> bytes:
    if configured:
        return configured.encode("utf-8")
    return hmac.new(secret_key.encode("utf-8"), b"mailer.suppression", hashlib.sha256).digest()
