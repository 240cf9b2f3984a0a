"""The only module that talks SMTP: one reused connection, reconnects, clear failure kinds (S2)."""

from __future__ import annotations

import logging
import smtplib
import socket
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


def failure_from_code(code: int, response: bytes | str) -> SendFailure:
    reason = response.decode("utf-8", "replace") if isinstance(response, bytes) else str(response)
    reason = " ".join(reason.split())[:400]
    return (PermanentFailure if 500 <= code < 600 else TransientFailure)(code, reason)


class TimedConnection(Connection):
    """Flask-Mail's connection, opened with a socket timeout (Flask-Mail has no setting for one)."""

    def __init__(self, mail_state: Any, timeout: float) -> None:
        super().__init__(mail_state)
        self.timeout = timeout

    def configure_host(self) -> smtplib.SMTP:
        state = self.mail
        cls = smtplib.SMTP_SSL if state.use_ssl else smtplib.SMTP
        host = cls(state.server, state.port, timeout=self.timeout)
        if state.use_tls:
            host.starttls()
        if state.username and state.password:
            host.login(state.username, state.password)
        return host


def flask_mail_opener(mail_state: Any, timeout: float) -> Callable[[], smtplib.SMTP]:
    """Open connections with the MAIL_* settings Flask-Mail holds."""

    def open_connection() -> smtplib.SMTP:
        return TimedConnection(mail_state, timeout).configure_host()

    return open_connection


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
        smtp = self._connection()
        try:
            smtp.sendmail(envelope_from, [recipient], raw)
        except smtplib.SMTPRecipientsRefused as exc:
            code, response = exc.recipients.get(recipient, (450, b"recipient refused"))
            raise failure_from_code(code, response) from None
        except smtplib.SMTPResponseException as exc:  # sender refused, data refused, ...
            if isinstance(exc, smtplib.SMTPServerDisconnected):
                raise
            if exc.smtp_code in (421,):
                self._drop()
            raise failure_from_code(exc.smtp_code, exc.smtp_error) from None
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

    def _connection(self) -> smtplib.SMTP:
        if self._smtp is None:
            try:
                self._smtp = self._open()
            except (OSError, smtplib.SMTPException) as exc:
                raise ServerUnavailable(None, f"cannot connect to the mail server: {exc}") from None
            self._sent_on_connection = 0
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
