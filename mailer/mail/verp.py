"""VERP envelope senders: `bounces+<token>@domain`, where the token names the row a bounce is about.

The token is `d<delivery id>` or `o<outbox id>` and a short keyed HMAC (its own salt, derived
from SECRET_KEY), never the address: a bounce names what went out without revealing who it
was for, and a forged or altered token is refused. Lower-case hex, because some mail systems
change the case of local parts."""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
from dataclasses import dataclass

SALT = b"mailer.verp"
SIGNATURE_HEX = 16  # 64 bits: plenty for an address nobody can try guesses against cheaply


class VerpKind(enum.StrEnum):
    DELIVERY = "d"  # an announcement delivery row
    OUTBOX = "o"  # a transactional (outbox) row


@dataclass(frozen=True)
class VerpTarget:
    kind: VerpKind
    row_id: int


_TOKEN = re.compile(rf"^([do])([1-9][0-9]{{0,18}})-([0-9a-f]{{{SIGNATURE_HEX}}})$")


def verp_key(secret_key: str | bytes) -> bytes:
    """The HMAC key for VERP tokens: derived from the secret key with its own salt."""
    secret = secret_key.encode() if isinstance(secret_key, str) else secret_key
    return hmac.new(secret, SALT, hashlib.sha256).digest()


def make_token(key: bytes, kind: VerpKind, row_id: int) -> str:
    body = f"{kind.value}{row_id}"
    return f"{body}-{_signature(key, body)}"


def read_token(key: bytes, token: str) -> VerpTarget | None:
    """The row a token names, or None when it is malformed or its signature does not match."""
    match = _TOKEN.match(token.strip().lower())
    if match is None:
        return None
    kind, row_id, signature = match.groups()
    if not hmac.compare_digest(signature, _signature(key, f"{kind}{row_id}")):
        return None
    return VerpTarget(VerpKind(kind), int(row_id))


def verp_address(key: bytes, bounce_address: str, kind: VerpKind, row_id: int) -> str:
    """bounces@forum.example -> bounces+d42-0123456789abcdef@forum.example"""
    local, _, domain = bounce_address.rpartition("@")
    return f"{local}+{make_token(key, kind, row_id)}@{domain}"


def tokens_in(text: str, bounce_address: str) -> list[str]:
    """Every candidate token addressed to `<local>+token@` in some text (addresses, headers)."""
    local = bounce_address.rpartition("@")[0]
    if not local:
        return []
    pattern = re.compile(re.escape(local) + r"\+([A-Za-z0-9-]{1,64})@", re.IGNORECASE)
    return pattern.findall(text)


def _signature(key: bytes, body: str) -> str:
    return hmac.new(key, body.encode("ascii"), hashlib.sha256).hexdigest()[:SIGNATURE_HEX]
