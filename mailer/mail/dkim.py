"""Optional DKIM signing (E4, E8). The signed headers include both List-Unsubscribe headers,
so a relay cannot strip or change the one-click unsubscribe without breaking the signature.

The headers a reader sees or a client acts on are over-signed: each is listed once more than the
message has it (RFC 6376 8.15), so a second From, Subject or List-Unsubscribe added on the way, or
one that was absent (a List-Id on a confirmation), breaks the signature."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import dkim

OVERSIGNED_HEADERS = [
    b"from", b"to", b"subject", b"date", b"message-id", b"reply-to", b"list-id",
    b"list-unsubscribe", b"list-unsubscribe-post", b"cc",
]
# The rest: each as often as present.
SIGNED_HEADERS = [*OVERSIGNED_HEADERS, b"mime-version", b"content-type", b"feedback-id"]


def headers_to_sign(head: bytes) -> list[bytes]:
    """The h= list for a message head (CRLF lines): OVERSIGNED_HEADERS each once more than present, the
    others as often as present."""
    present = Counter(
        line.split(b":", 1)[0].strip().lower() for line in head.split(b"\r\n") if line and line[:1] not in b" \t"
    )
    return [
        name
        for name in SIGNED_HEADERS
        for _ in range(present[name] + 1 if name in OVERSIGNED_HEADERS else present[name])
    ]


@dataclass(frozen=True)
class DkimSigner:
    selector: bytes
    domain: bytes
    private_key: bytes

    def sign(self, raw: bytes) -> bytes:
        headers = headers_to_sign(raw.split(b"\r\n\r\n", 1)[0])
        signature: bytes = dkim.sign(  # dkimpy is untyped: sign() returns the DKIM-Signature header line
            raw, self.selector, self.domain, self.private_key,
            include_headers=headers, canonicalize=(b"relaxed", b"relaxed"),
        )
        return signature + raw
