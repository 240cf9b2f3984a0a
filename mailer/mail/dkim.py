"""Optional DKIM signing (E4). The signed headers include both List-Unsubscribe headers,
so a relay cannot strip or change the one-click unsubscribe without breaking the signature."""

from __future__ import annotations

from dataclasses import dataclass

import dkim

SIGNED_HEADERS = [
    b"from", b"to", b"subject", b"date", b"message-id", b"reply-to", b"list-id",
    b"list-unsubscribe", b"list-unsubscribe-post", b"mime-version", b"content-type",
]


@dataclass(frozen=True)
class DkimSigner:
    selector: bytes
    domain: bytes
    private_key: bytes

    def sign(self, raw: bytes) -> bytes:
        present = {line.split(b":", 1)[0].strip().lower() for line in raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")}
        headers = [h for h in SIGNED_HEADERS if h in present]
        signature: bytes = dkim.sign(  # dkimpy is untyped: sign() returns the DKIM-Signature header line
            raw, self.selector, self.domain, self.private_key,
            include_headers=headers, canonicalize=(b"relaxed", b"relaxed"),
        )
        return signature + raw
