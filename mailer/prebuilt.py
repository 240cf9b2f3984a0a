"""Messages for sends to many: serialised once by EmailMessage, then made per recipient in bytes.

Building a full MIME message per recipient with the email package costs several times the
SMTP send itself; here EmailMessage builds the structure once (boundaries, MIME headers,
the constant headers), and each recipient costs a few header lines, two str.replace and the
C quoted-printable codec (S7, issue 'sending engine')."""

from __future__ import annotations

import binascii
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from .emails import BUILD_POLICY, WIRE_POLICY, MailSettings, header_safe


class PrebuiltMessage:
    """A multipart/alternative message serialised once by EmailMessage, then made per recipient
    by putting their headers and quoted-printable bodies into the bytes.

    Building a full MIME message per recipient with the email package costs about ten times
    the SMTP send; this keeps the structure (boundaries, MIME headers, constant headers) from
    EmailMessage and does only the cheap per-recipient work (S7, issue 'sending engine')."""

    _TEXT = b"MAILERBODYTEXTX"
    _HTML = b"MAILERBODYHTMLX"

    def __init__(
        self,
        settings: MailSettings,
        *,
        transactional: bool,
        constant_headers: dict[str, str] | None = None,
    ) -> None:
        skeleton = EmailMessage(policy=BUILD_POLICY)
        skeleton["From"] = Address(display_name=header_safe(settings.from_name), addr_spec=settings.from_address)
        skeleton["Reply-To"] = settings.reply_to
        skeleton["List-Id"] = settings.list_id
        if transactional:
            skeleton["Auto-Submitted"] = "auto-generated"
        for key, value in (constant_headers or {}).items():
            skeleton[key] = header_safe(value)
        skeleton.set_content(self._TEXT.decode(), charset="utf-8", cte="quoted-printable")
        skeleton.add_alternative(self._HTML.decode(), subtype="html", charset="utf-8", cte="quoted-printable")
        raw = skeleton.as_bytes(policy=WIRE_POLICY)
        head, _, body = raw.partition(b"\r\n\r\n")
        self._head = head + b"\r\n"
        self._body = body
        self._domain = settings.message_id_domain
        self._subjects: dict[str, bytes] = {}

    def render(
        self,
        *,
        to_address: str,
        to_name: str,
        subject: str,
        html_body: str,
        text_body: str,
        now: datetime,
        headers: dict[str, str] | None = None,
    ) -> bytes:
        """Bytes for one recipient, ready for SMTP: CRLF, no line over 998 octets (E1-E3)."""
        lines = [
            _fold("To", str(Address(display_name=header_safe(to_name), addr_spec=to_address))),
            self._subject(subject),
            b"Date: " + format_datetime(now).encode("ascii") + b"\r\n",
            b"Message-ID: " + make_msgid(domain=self._domain).encode("ascii") + b"\r\n",
        ]
        lines.extend(_fold(key, header_safe(value)) for key, value in (headers or {}).items())
        body = self._body.replace(self._TEXT, _qp(text_body), 1).replace(self._HTML, _qp(html_body), 1)
        return b"".join(lines) + self._head + b"\r\n" + body

    def _subject(self, subject: str) -> bytes:
        folded = self._subjects.get(subject)
        if folded is None:
            folded = _fold("Subject", header_safe(subject))
            if len(self._subjects) < 1000:
                self._subjects[subject] = folded
        return folded


def _fold(name: str, value: str) -> bytes:
    """One header, RFC 2047-encoded where it is not ASCII; long ASCII values stay on one line (<= 998)."""
    return WIRE_POLICY.fold_binary(name, value)


def _qp(text: str) -> bytes:
    """Quoted-printable with CRLF line ends and lines of at most 76 octets (the C codec, not email's)."""
    data = text.replace("\r\n", "\n").encode("utf-8")
    if not data.endswith(b"\n"):
        data += b"\n"
    return binascii.b2a_qp(data, quotetabs=False, istext=True, header=False).replace(b"\n", b"\r\n")[:-2]
