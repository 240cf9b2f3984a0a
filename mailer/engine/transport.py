"""The only module that talks SMTP: one reused connection, reconnects, clear failure kinds (S2).

When the server offers PIPELINING (RFC 2920; Postfix, Exim and the big relays do), MAIL, RCPT
and DATA go in one write and their three replies are read together: two round trips a message
instead of four. Without it, smtplib's sendmail does the conversation step by step."""

from __future__ import annotations

import logging
import re
import smtplib
import socket
import ssl
from collections.abc import Callable
from typing import Any

from flask_mail import Connection

log = logging.getLogger(__name__)


class SendFailure(Exception):
    """The server did not accept a message."""

    permanent = False

    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(f"{code} {reason}" if code else reason)
        self.code = code
        self.reason = reason


class TransientFailure(SendFailure):
    """Try again later: 4xx, a dropped connection or a timeout (S4)."""


class PermanentFailure(SendFailure):
    """5xx for this recipient: retrying will not help (S4)."""

    permanent = True


class ServerUnavailable(TransientFailure):
    """No connection could be made; no message is to blame."""


def unwritable(exc: ValueError) -> PermanentFailure:
    """A message that could not be written for this recipient (an address the email package
    refuses): no server would take it either, so it fails like a 5xx, without stopping the batch."""
    return PermanentFailure(None, f"message could not be written for this address: {exc}"[:400])


def failure_from_code(code: int, response: bytes | str) -> SendFailure:
    reason = response.decode("utf-8", "replace") if isinstance(response, bytes) else str(response)
    reason = " ".join(reason.split())[:400]
    return (PermanentFailure if 500 <= code < 600 else TransientFailure)(code, reason)


class TimedConnection(Connection):
    """Flask-Mail's connection, opened with a socket timeout (Flask-Mail has no setting for one)
    and a TLS context that checks the server's certificate (smtplib's default does not)."""

    def __init__(self, mail_state: Any, timeout: float, tls_context: ssl.SSLContext | None = None) -> None:
        super().__init__(mail_state)
        self.timeout = timeout
        self.tls_context = tls_context or ssl.create_default_context()

    def configure_host(self) -> smtplib.SMTP:
        state = self.mail
        if state.use_ssl:
            host: smtplib.SMTP = smtplib.SMTP_SSL(
                state.server, state.port, timeout=self.timeout, context=self.tls_context
            )
        else:
            host = smtplib.SMTP(state.server, state.port, timeout=self.timeout)
        try:
            if state.use_tls:
                host.starttls(context=self.tls_context)
            if state.username and state.password:
                host.login(state.username, state.password)
            host.ehlo_or_helo_if_needed()
        except BaseException:
            host.close()
            raise
        return host


def flask_mail_opener(mail_state: Any, timeout: float, *, ca_file: str | None = None) -> Callable[[], smtplib.SMTP]:
    """Open connections with the MAIL_* settings Flask-Mail holds; `ca_file` trusts a private CA."""
    tls_context = ssl.create_default_context(cafile=ca_file or None)

    def open_connection() -> smtplib.SMTP:
        return TimedConnection(mail_state, timeout, tls_context).configure_host()

    return open_connection


_SAFE_ADDRESS = re.compile(r"[^\s<>]+@[^\s<>]+|")  # the empty reverse-path <> is allowed


def _pipelined_sendmail(smtp: smtplib.SMTP, envelope_from: str, recipient: str, raw: bytes) -> None:
    """sendmail's conversation with MAIL, RCPT and DATA in one write (RFC 2920), raising the
    exceptions sendmail raises, so failures are told apart the same way; RSET after a refusal."""
    size = f" SIZE={len(raw)}" if smtp.has_extn("size") else ""
    smtp.send(f"MAIL FROM:<{envelope_from}>{size}\r\nRCPT TO:<{recipient}>\r\nDATA\r\n".encode("ascii"))
    mail_code, mail_reply = smtp.getreply()
    rcpt_code, rcpt_reply = smtp.getreply()
    data_code, data_reply = smtp.getreply()
    if data_code == 354 and (mail_code != 250 or rcpt_code not in (250, 251)):
        smtp.send(b".\r\n")  # a server that opened DATA anyway: close it empty, then reset
        smtp.getreply()
    if mail_code != 250:
        _reset(smtp, mail_code)
        raise smtplib.SMTPSenderRefused(mail_code, mail_reply, envelope_from)
    if rcpt_code not in (250, 251):
        _reset(smtp, rcpt_code)
        raise smtplib.SMTPRecipientsRefused({recipient: (rcpt_code, rcpt_reply)})
    if data_code != 354:
        _reset(smtp, data_code)
        raise smtplib.SMTPDataError(data_code, data_reply)
    crlf = raw.count(b"\r\n")
    if raw.count(b"\n") != crlf or raw.count(b"\r") != crlf:
        raw = smtplib._fix_eols(raw)  # type: ignore[attr-defined]  # bare LF or CR: as sendmail would
    data = raw.replace(b"\r\n.", b"\r\n..")  # dot-stuffing (RFC 5321 4.5.2)
    if data.startswith(b"."):
        data = b"." + data
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    smtp.send(data + b".\r\n")
    code, reply = smtp.getreply()
    if code != 250:
        _reset(smtp, code)
        raise smtplib.SMTPDataError(code, reply)


def _reset(smtp: smtplib.SMTP, code: int) -> None:
    """RSET after a refused step, as sendmail does; a closing server (421) gets none."""
    if code == 421:
        return
    try:
        smtp.rset()
    except smtplib.SMTPServerDisconnected:
        pass


class SmtpTransport:
    """Sends prebuilt messages over one connection, reopened after a drop or every N messages."""

    def __init__(
        self,
        open_connection: Callable[[], smtplib.SMTP],
        *,
        max_per_connection: int = 500,
        rate_limiter: Any = None,
        sign: Callable[[bytes], bytes] | None = None,
    ) -> None:
        self._open = open_connection
        self._limiter = rate_limiter
        self._sign = sign  # DKIM (E4): every message that leaves is signed here, once
        self._max_per_connection = max(1, max_per_connection)
        self._smtp: smtplib.SMTP | None = None
        self._pipelining = False
        self._sent_on_connection = 0
        self.connections_opened = 0

    def send(self, envelope_from: str, recipient: str, raw: bytes) -> None:
        """Return once the server accepted the message; raise a SendFailure otherwise."""
        if self._smtp is not None and self._sent_on_connection >= self._max_per_connection:
            self.close()
        if self._sign is not None:
            raw = self._sign(raw)
        reused = self._smtp is not None
        if self._limiter is not None:
            self._limiter.wait()
        try:
            self._send_once(envelope_from, recipient, raw)
        except (smtplib.SMTPServerDisconnected, ConnectionError) as exc:
            self._drop()
            if not reused:
                raise TransientFailure(None, f"connection lost: {exc}") from None
            # An idle connection the server had already closed: one fresh try.
            try:
                self._send_once(envelope_from, recipient, raw)
            except (smtplib.SMTPServerDisconnected, OSError) as again:
                self._drop()
                raise TransientFailure(None, f"connection lost: {again}") from None

    def _send_once(self, envelope_from: str, recipient: str, raw: bytes) -> None:
        for address in (envelope_from, recipient):
            if not address.isascii() or not _SAFE_ADDRESS.fullmatch(address):
                # Would need SMTPUTF8, or would break the command line: no server will take it.
                raise PermanentFailure(None, "address cannot be used in SMTP (non-ASCII, spaces or brackets)")
        smtp = self._connection()
        try:
            if self._pipelining:
                _pipelined_sendmail(smtp, envelope_from, recipient, raw)
            else:
                smtp.sendmail(envelope_from, [recipient], raw)
        except smtplib.SMTPRecipientsRefused as exc:
            code, response = exc.recipients.get(recipient, (450, b"recipient refused"))
            raise self._refused(code, response) from None
        except smtplib.SMTPResponseException as exc:  # sender refused, data refused, ...
            if isinstance(exc, smtplib.SMTPServerDisconnected):
                raise
            raise self._refused(exc.smtp_code, exc.smtp_error) from None
        except (socket.timeout, TimeoutError) as exc:
            self._drop()
            raise TransientFailure(None, f"timed out: {exc}") from None
        except smtplib.SMTPServerDisconnected:
            raise
        except ConnectionError:
            raise
        except OSError as exc:
            self._drop()
            raise TransientFailure(None, f"connection error: {exc}") from None
        self._sent_on_connection += 1

    def _refused(self, code: int, response: bytes | str) -> SendFailure:
        """The failure for a refusal at any step; 421 means the server is closing: never reuse it."""
        if code == 421:
            self._drop()
        return failure_from_code(code, response)

    def _connection(self) -> smtplib.SMTP:
        if self._smtp is None:
            try:
                self._smtp = self._open()
            except (OSError, smtplib.SMTPException) as exc:
                raise ServerUnavailable(None, f"cannot connect to the mail server: {exc}") from None
            self._sent_on_connection = 0
            self._pipelining = self._smtp.has_extn("pipelining")
            self.connections_opened += 1
        return self._smtp

    def _drop(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            try:
                smtp.close()
            except OSError:
                pass

    def close(self) -> None:
        """Say QUIT politely; a connection that is already gone is just dropped."""
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            try:
                smtp.quit()
            except (OSError, smtplib.SMTPException):
                try:
                    smtp.close()
                except OSError:
                    pass

    def __enter__(self) -> SmtpTransport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
