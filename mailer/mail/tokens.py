"""Signed links: one salt per purpose; the payload is the member's link key and token version.

Never the email address: a link forwarded or logged reveals nothing, and bumping the
member's version revokes every old link at once. The link key is random and belongs to one
member row for ever, so a link can never open someone else's record, even where a database
would give a deleted member's id to the next person (issue 15), and it does not show how many
members there are."""

from __future__ import annotations

import enum
import hmac
import re
from datetime import timedelta

from itsdangerous import BadSignature, SignatureExpired, TimestampSigner, URLSafeSerializer, URLSafeTimedSerializer
from itsdangerous.encoding import base64_encode, int_to_bytes

from mailer.clock import Clock
from mailer.errors import TokenExpired, TokenInvalid

LINK_KEY_PATTERN = re.compile(r"[A-Za-z0-9_-]{16,64}")


class Purpose(enum.StrEnum):
    CONFIRM = "confirm"
    UNSUBSCRIBE = "unsubscribe"
    PREFERENCES = "preferences"
    ADDRESS_CHANGE = "change-address"  # the payload's key is an address change's, not a member's (V7)
    # Admin accounts (V4): the value is also the link's path under the base URL.
    ADMIN_INVITATION = "admin/invitation"
    PASSWORD_RESET = "admin/reset-password"
    EMAIL_CHANGE = "admin/confirm-email"


# How long each emailed admin link works (V4): the mails say so, the rows record it.
ADMIN_LINK_LIFETIMES = {
    Purpose.ADMIN_INVITATION: timedelta(hours=72),
    Purpose.PASSWORD_RESET: timedelta(hours=1),
    Purpose.EMAIL_CHANGE: timedelta(hours=24),
}


def _serializer(secret_key: str, purpose: Purpose, clock: Clock) -> URLSafeTimedSerializer:
    class ClockSigner(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(clock.now().timestamp())

    return URLSafeTimedSerializer(secret_key, salt=f"mailer.{purpose.value}", signer=ClockSigner)


def make_token(secret_key: str, purpose: Purpose, link_key: str, version: int, *, clock: Clock) -> str:
    return _serializer(secret_key, purpose, clock).dumps([link_key, version])


class TokenMaker:
    """Makes many tokens for a send to thousands: the same strings as make_token, at a fifth of
    the cost, because the derived key's HMAC state and the timestamp are made once, not per link.

    itsdangerous still derives the key and reads every token; tests check that the strings are
    identical to its own, so a change in its format shows up there."""

    def __init__(self, secret_key: str, clock: Clock) -> None:
        self._clock = clock
        self._macs = {}
        for purpose in Purpose:
            signer = _serializer(secret_key, purpose, clock).make_signer()
            self._macs[purpose] = hmac.new(signer.derive_key(), digestmod=signer.digest_method)
        self._second = -1
        self._timestamp = b""

    def make(self, purpose: Purpose, link_key: str, version: int) -> str:
        if type(version) is not int or not isinstance(link_key, str) or not LINK_KEY_PATTERN.fullmatch(link_key):
            raise TypeError("a link key (URL-safe text) and an int version are needed")
        second = int(self._clock.now().timestamp())
        if second != self._second:
            self._second, self._timestamp = second, base64_encode(int_to_bytes(second))
        # URLSafeTimedSerializer's compact JSON of a URL-safe string and an int (nothing to escape);
        # zlib never shortens it, so it is not used.
        value = base64_encode(f'["{link_key}",{version}]'.encode("ascii")) + b"." + self._timestamp
        mac = self._macs[purpose].copy()
        mac.update(value)
        return (value + b"." + base64_encode(mac.digest())).decode("ascii")


def read_token(
    secret_key: str, purpose: Purpose, token: str, *, clock: Clock, max_age_seconds: int | None = None
) -> tuple[str, int]:
    """(link_key, version) from a token.

    Raises TokenExpired (carrying the link key, so the page can offer a fresh link)
    or TokenInvalid for anything tampered, truncated or of another purpose."""
    serializer = _serializer(secret_key, purpose, clock)
    if len(token) > 500:
        raise TokenInvalid()
    try:
        payload = serializer.loads(token, max_age=max_age_seconds)
    except SignatureExpired as exc:
        raise TokenExpired(_link_key_of(exc.payload, serializer)) from None
    except BadSignature:
        raise TokenInvalid() from None
    return _parse(payload)


def _link_key_of(raw_payload: bytes | None, serializer: URLSafeTimedSerializer) -> str | None:
    try:
        return _parse(serializer.load_payload(raw_payload))[0] if raw_payload else None
    except (BadSignature, TokenInvalid):
        return None


def _parse(payload: object) -> tuple[str, int]:
    if (
        isinstance(payload, list)
        and len(payload) == 2
        and isinstance(payload[0], str)
        and LINK_KEY_PATTERN.fullmatch(payload[0])
        and isinstance(payload[1], int)
        and not isinstance(payload[1], bool)
    ):
        return payload[0], payload[1]
    raise TokenInvalid()


# "View in your browser" (issue 17.4): a link to one announcement's web version, the same for every member
# (no member data in it or on the page), so it never expires; the page checks the announcement still stands.
_WEB_VIEW_SALT = "mailer.web-view"


def make_web_view_token(secret_key: str, announcement_id: int) -> str:
    """The signed part of an announcement's web-view link: its id and a signature, no timestamp."""
    if type(announcement_id) is not int or announcement_id < 1:
        raise TypeError("an announcement id (a positive int) is needed")
    return str(URLSafeSerializer(secret_key, salt=_WEB_VIEW_SALT).dumps(announcement_id))


def read_web_view_token(secret_key: str, token: str) -> int:
    """The announcement id a web-view token names. Raises TokenInvalid for anything tampered or truncated."""
    if len(token) > 200:
        raise TokenInvalid()
    try:
        payload = URLSafeSerializer(secret_key, salt=_WEB_VIEW_SALT).loads(token)
    except BadSignature:
        raise TokenInvalid() from None
    if type(payload) is not int or payload < 1:
        raise TokenInvalid()
    return payload
