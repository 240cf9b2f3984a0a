"""Messages for sends to many: serialised once by EmailMessage, then made per recipient in bytes.

Building a full MIME message per recipient with the email package costs several times the
SMTP send itself; here EmailMessage builds the structure once (boundaries, MIME headers,
the constant headers), and each recipient costs a few header lines, two str.replace and the
C quoted-printable codec (S7, issue 'sending engine')."""

from __future__ import annotations

import binascii
import hashlib
import html
import re
from datetime import datetime
from email.header import Header
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid

from mailer.mail.compose import block_end, fit_block
from mailer.mail.emails import BUILD_POLICY, WIRE_POLICY, MailSettings, MailTemplate, header_safe


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
        sender = Address(display_name=header_safe(settings.from_name), addr_spec=settings.from_address)
        constant = [("From", str(sender)), ("Reply-To", settings.reply_to)]
        if transactional:
            constant.append(("Auto-Submitted", "auto-generated"))
        constant.extend((key, header_safe(value)) for key, value in (constant_headers or {}).items())
        skeleton = EmailMessage(policy=BUILD_POLICY)
        skeleton.set_content(self._TEXT.decode(), charset="utf-8", cte="quoted-printable")
        skeleton.add_alternative(self._HTML.decode(), subtype="html", charset="utf-8", cte="quoted-printable")
        for part in skeleton.iter_parts():
            del part["MIME-Version"]  # add_alternative gives the HTML part one: MIME-Version only at the top (E8)
        raw = skeleton.as_bytes(policy=WIRE_POLICY)
        head, _, body = raw.partition(b"\r\n\r\n")
        # The constant headers are folded as the per-recipient ones are (_fold: encoded words <= 75).
        list_id = b"" if transactional else _list_id_header(settings.list_id)  # on list mail only (E8)
        self._head = b"".join(_fold(name, value) for name, value in constant) + list_id + head + b"\r\n"
        self._body = body
        self._domain = settings.message_id_domain
        self._subjects: dict[str, bytes] = {}
        self._templates: dict[int, tuple[MailTemplate, _EncodedBody, _EncodedBody]] = {}

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
        message_id: str | None = None,
    ) -> bytes:
        """Bytes for one recipient, ready for SMTP: CRLF, no line over 998 octets (E1-E3). `message_id`
        (row_message_id) makes a resend of the same row carry the same Message-ID; None: a new one."""
        return self._assemble(to_address, to_name, subject, _qp(text_body), _qp(html_body), now, headers, message_id)

    def render_template(
        self,
        template: MailTemplate,
        values: dict[str, str],
        *,
        to_address: str,
        to_name: str,
        now: datetime,
        headers: dict[str, str] | None = None,
        message_id: str | None = None,
    ) -> bytes:
        """Like render, from a template rendered once: lines without a recipient's values were
        quoted-printable-encoded once, so each recipient costs only the lines that carry theirs."""
        text, html_body = self._encoded_bodies(template)
        subject = template.subject
        for key, marker in template.slots.items():
            if marker in subject:
                subject = subject.replace(marker, header_safe(values.get(key, "")))
        escaped = {template.slots[k]: html.escape(v, quote=True) for k, v in values.items() if k in template.slots}
        raw = {template.slots[k]: v for k, v in values.items() if k in template.slots}
        return self._assemble(
            to_address, to_name, subject, text.fill(raw), html_body.fill(escaped), now, headers, message_id
        )

    def _assemble(
        self, to_address: str, to_name: str, subject: str, text_qp: bytes, html_qp: bytes, now: datetime,
        headers: dict[str, str] | None, message_id: str | None = None,
    ) -> bytes:
        """The recipient's headers, the constant head, and the two encoded bodies in the skeleton."""
        lines = [
            _to_header(header_safe(to_name), to_address),
            self._subject(subject),
            b"Date: " + format_datetime(now).encode("ascii") + b"\r\n",
            b"Message-ID: " + (message_id or make_msgid(domain=self._domain)).encode("ascii") + b"\r\n",
        ]
        lines.extend(_fold(key, header_safe(value)) for key, value in (headers or {}).items())
        body = self._body.replace(self._TEXT, text_qp, 1).replace(self._HTML, html_qp, 1)
        return b"".join(lines) + self._head + b"\r\n" + body

    def _encoded_bodies(self, template: MailTemplate) -> tuple[_EncodedBody, _EncodedBody]:
        cached = self._templates.get(id(template))
        if cached is None or cached[0] is not template:
            markers = list(template.slots.values())
            cached = (
                template, _EncodedBody(template.text, markers, fit=True), _EncodedBody(template.html, markers)
            )
            self._templates = {id(template): cached} if len(self._templates) > 50 else self._templates
            self._templates[id(template)] = cached
        return cached[1], cached[2]

    def _subject(self, subject: str) -> bytes:
        folded = self._subjects.get(subject)
        if folded is None:
            folded = _fold("Subject", header_safe(subject))
            if len(self._subjects) < 1000:
                self._subjects[subject] = folded
        return folded


def row_message_id(kind: str, row_id: int, *, seed: str, domain: str) -> str:
    """The Message-ID of the mail a queue row sends, the same every time that row is sent (E8), so mail
    clients fold a resend after a crash (at-least-once, S3) into the first: `<kind.id.digest@domain>`.

    `seed` is a value of the row's recipient that another database would not have (their random link
    key; the address when there is none): its digest keeps ids unique across installations and a
    database started afresh, and shows nothing of it."""
    digest = hashlib.sha256(f"{kind}:{row_id}:{seed}".encode()).hexdigest()[:20]
    return f"<{kind}.{row_id}.{digest}@{domain}>"


_PLAIN_NAME = re.compile(r"[A-Za-z0-9'_-]+(?: [A-Za-z0-9'_-]+)*")
_PLAIN_ADDRESS = re.compile(r"[A-Za-z0-9_+-]+(?:\.[A-Za-z0-9_+-]+)*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*")


def _to_header(name: str, address: str) -> bytes:
    """A plain ASCII name and address are written as they are (what the email package writes for
    them, without its parser); anything else goes through the email package."""
    if len(name) + len(address) < 900 and _PLAIN_ADDRESS.fullmatch(address):
        if not name:
            return f"To: {address}\r\n".encode("ascii")
        if _PLAIN_NAME.fullmatch(name):
            return f"To: {name} <{address}>\r\n".encode("ascii")
        if name.isascii():
            # Quoted as needed; the email package's parser is ~100x slower.
            return f"To: {formataddr((name, address))}\r\n".encode("ascii")
        return f"To: {_encoded_words('To', name)} <{address}>\r\n".encode("ascii")
    return _fold("To", str(Address(display_name=name, addr_spec=address)))


# Encoded words are at most 75 characters (RFC 2047 section 2, E8): address headers are folded by the
# email package at 76 columns (at 78 it writes words of 76); other headers are encoded by email.header,
# whose words hold every space (the email package's folder drops one where a word ends at a space).
_ENCODED_POLICY = WIRE_POLICY.clone(max_line_length=76)
_ADDRESS_HEADERS = frozenset({"from", "to", "cc", "reply-to", "sender"})


def _encoded_words(name: str, value: str) -> str:
    """`value` as RFC 2047 encoded words of at most 75 characters, on folded lines of at most 76."""
    return Header(value, "utf-8", maxlinelen=76, header_name=name).encode(linesep="\r\n")


_PHRASE_ATOMS = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~ -]*")


def _list_id_header(value: str) -> bytes:
    """List-Id: `name <list.identifier>` (RFC 2919): the name quoted when it has specials such as a
    comma or brackets, in encoded words when it is not ASCII; the identifier as it is."""
    name, _, identifier = value.rpartition(" <")
    if not identifier.endswith(">") or not identifier.isascii() or not name.strip():
        return _fold("List-Id", value)
    name = name.strip()
    if not name.isascii():
        return f"List-Id: {_encoded_words('List-Id', name)} <{identifier}\r\n".encode("ascii")
    if not _PHRASE_ATOMS.fullmatch(name):
        name = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return _fold("List-Id", f"{name} <{identifier}")


def _fold(name: str, value: str) -> bytes:
    """One header as EmailMessage would write it: RFC 2047-encoded where it is not ASCII, in encoded
    words of at most 75 characters; long ASCII values on one line (<= 998)."""
    if value.isascii() and value.isprintable() and len(name) + len(value) < 990:
        return f"{name}: {value}\r\n".encode("ascii")  # what the email package writes for it, without its parser
    if not value.isascii() and name.lower() not in _ADDRESS_HEADERS:
        return f"{name}: {_encoded_words(name, value)}\r\n".encode("ascii")
    _, header = BUILD_POLICY.header_store_parse(name, value)
    return (WIRE_POLICY if value.isascii() else _ENCODED_POLICY).fold_binary(name, header)


class _EncodedBody:
    """A body as lines: quoted-printable once where no slot appears, per recipient where one does.

    QP encodes each line on its own (soft breaks stay inside a line), so encoding line by line
    and joining gives the same bytes as encoding the whole text."""

    def __init__(self, body: str, markers: list[str], *, fit: bool = False) -> None:
        self._fit = fit  # the text part: a filled paragraph over 78 characters is wrapped again (E1, compose.fit_block)
        lines = body.replace("\r\n", "\n").rstrip("\n").split("\n")
        # Runs of constant lines are encoded and joined once: the per-recipient loop sees only
        # the lines with a slot in them, as (constant bytes before it, the line, its markers).
        self._slotted: list[tuple[bytes, str, tuple[str, ...]]] = []
        # In the text part a slotted line takes the rest of its paragraph with it, to be wrapped again when a
        # value is longer than the room kept for it (compose.fit_block).
        constant: list[bytes] = []
        i = 0
        while i < len(lines):
            present = tuple(m for m in markers if m in lines[i])
            if present:
                end = block_end(lines, i) if fit else i + 1
                block = "\n".join(lines[i:end])
                present = tuple(m for m in markers if m in block)
                self._slotted.append((b"".join(constant), block, present))
                constant = []
                i = end
            else:
                constant.append(_qp_line(lines[i]))
                i += 1
        self._tail = b"".join(constant)

    def fill(self, values: dict[str, str]) -> bytes:
        """The encoded body with these marker -> value replacements, without the final CRLF."""
        out = []
        for before, line, markers in self._slotted:
            for marker in markers:
                line = line.replace(marker, values.get(marker, marker))
            if self._fit:
                line = fit_block(line)
            out.append(before)
            out.append(_qp_line(line))
        out.append(self._tail)
        return b"".join(out)[:-2]


def _qp_line(line: str) -> bytes:
    return binascii.b2a_qp((line + "\n").encode("utf-8"), quotetabs=False, istext=True, header=False).replace(
        b"\n", b"\r\n"
    )


def _qp(text: str) -> bytes:
    """Quoted-printable with CRLF line ends and lines of at most 76 octets (the C codec, not email's)."""
    data = text.replace("\r\n", "\n").encode("utf-8")
    if not data.endswith(b"\n"):
        data += b"\n"
    return binascii.b2a_qp(data, quotetabs=False, istext=True, header=False).replace(b"\n", b"\r\n")[:-2]
