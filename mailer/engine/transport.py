"""The only module that talks SMTP: one reused connection, reconnects, clear failure kinds (S2).

When the server offers PIPELINING (RFC 2920; Postfix, Exim and the big relays do), a stream of
messages costs one write and one read per message: the content of one message with the next
one's MAIL, RCPT and DATA behind it, then their four replies together. RFC 2920 allows content
first in such a group; the client still waits for 354 before it sends a message's content.
Without PIPELINING, smtplib's sendmail does the conversation step by step (four round trips)."""

from __future__ import annotations

import contextlib
import logging
import re
import smtplib
import socket
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

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


class Withdrawn(SendFailure):
    """Not written to the relay after all: the sender's `withdrawn` check said so just before (J4).

    `why` is the caller's own answer for this message, handed back with the outcome."""

    def __init__(self, why: Any) -> None:
        super().__init__(None, "withdrawn before it was written")
        self.why = why


Withdrawals = Callable[[list[Any]], Mapping[Any, Any]]
"""Given the keys of the messages about to be written, those not to write after all, each with its reason."""


def unwritable(exc: ValueError) -> PermanentFailure:
    """A message that could not be written for this recipient (an address the email package
    refuses): no server would take it either, so it fails like a 5xx, without stopping the batch."""
    return PermanentFailure(None, f"message could not be written for this address: {exc}"[:400])


def failure_from_code(code: int, response: bytes | str) -> SendFailure:
    reason = response.decode("utf-8", "replace") if isinstance(response, bytes) else str(response)
    reason = " ".join(reason.split())[:400]
    return (PermanentFailure if 500 <= code < 600 else TransientFailure)(code, reason)


_SAFE_ADDRESS = re.compile(r"[^\s<>]+@[^\s<>]+|")  # the empty reverse-path <> is allowed
_LINE_END = re.compile(rb"\r\n|\n|\r(?!\n)")  # CRLF, or a bare LF or CR


@dataclass(frozen=True)
class Outgoing:
    """One message for one recipient; `key` comes back with its outcome."""

    key: Any
    envelope_from: str
    recipient: str
    raw: bytes


Outcome = tuple[Any, SendFailure | None]


@dataclass
class _InFlight:
    key: Any
    envelope_from: str
    recipient: str
    raw: bytes  # signed, as it will go
    may_retry: bool = True  # a message is sent again at most once after a lost connection
    on_used_connection: bool = False  # its envelope went on a connection that had carried one before


def _address_problem(envelope_from: str, recipient: str) -> PermanentFailure | None:
    for address in (envelope_from, recipient):
        if not address.isascii() or not _SAFE_ADDRESS.fullmatch(address):
            # Would need SMTPUTF8, or would break the command line: no server will take it.
            return PermanentFailure(None, "address cannot be used in SMTP (non-ASCII, spaces or brackets)")
    return None


def _content(raw: bytes) -> bytes:
    """A message as it goes after DATA: CRLF line ends, dot-stuffed (RFC 5321 4.5.2), ended by a dot line."""
    crlf = raw.count(b"\r\n")
    if raw.count(b"\n") != crlf or raw.count(b"\r") != crlf:
        raw = _LINE_END.sub(b"\r\n", raw)  # bare LF or CR made CRLF, as smtplib does for a str message
    data = raw.replace(b"\r\n.", b"\r\n..")
    if data.startswith(b"."):
        data = b"." + data
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data + b".\r\n"


def _socket(smtp: smtplib.SMTP) -> socket.socket:
    """The connection's socket: smtplib types it optional, None only before connect() and after close()."""
    assert smtp.sock is not None, "SMTP connection has no socket"
    return smtp.sock


class _Replies:
    """SMTP replies read straight from the socket: one read usually brings a whole group's."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._lines: deque[bytes] = deque()
        self._partial = b""

    def read(self) -> tuple[int, bytes]:
        text: list[bytes] = []
        while True:
            while not self._lines:
                chunk = self._sock.recv(65536)
                if not chunk:
                    raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")
                *complete, self._partial = (self._partial + chunk).split(b"\n")
                self._lines.extend(complete)
            line = self._lines.popleft()
            text.append(line[4:].strip(b" \t\r"))
            if line[3:4] != b"-":
                break
        try:
            code = int(line[:3])
        except ValueError:
            code = -1  # not SMTP: as smtplib reports it
        return code, b"\n".join(text)


_ACCEPTED = ((250,), (250, 251), (354,))  # what MAIL, RCPT and DATA answer when all is well


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
        self._open_connection = open_connection
        self._limiter = rate_limiter
        self._sign = sign  # DKIM (E4): every message that leaves is signed here, once
        self._max_per_connection = max(1, max_per_connection)
        self._smtp: smtplib.SMTP | None = None
        self._pipelining = False
        self._size = False
        self._replies: _Replies | None = None
        self._open: _InFlight | None = None  # DATA accepted (354), content not yet written
        self._needs_reset = False
        self._started_on_connection = 0
        self._withdrawn: Withdrawals | None = None
        self.connections_opened = 0

    def send(self, envelope_from: str, recipient: str, raw: bytes) -> None:
        """Return once the server accepted the message; raise a SendFailure otherwise."""
        for _key, failure in self.send_all([Outgoing(None, envelope_from, recipient, raw)]):
            if failure is not None:
                raise failure

    def send_all(
        self, messages: Iterable[Outgoing], *, withdrawn: Withdrawals | None = None
    ) -> Generator[Outcome, None, None]:
        """Send a stream of messages; yield (key, None) once the server accepted one and (key, failure)
        when it did not, as each outcome becomes known (a refused envelope can be known before the
        previous message's content is answered).

        Messages are taken from `messages` as the connection is ready for them, and one more while
        the server works on a group of commands (so building the next message overlaps the wait).
        Raises ServerUnavailable when no connection can be made: a message with no outcome by then
        has not been accepted as far as we know; send it again later (at-least-once). Stopping
        early (closing the generator, or an error) hangs up on a message still open in DATA, so the
        server never delivers it.

        `withdrawn` is asked just before every write which of the messages it carries must not go (the
        member left while the batch was on its way, J4): such an envelope is not sent, and such a content
        is not written (the connection is hung up on, which makes the server drop that open DATA, and the
        rest goes on a new one). Those messages come back with a `Withdrawn` outcome."""
        source = iter(messages)
        self._withdrawn = withdrawn
        ahead: list[Outgoing | Exception] = []  # at most one message, taken while the server worked

        def look_ahead() -> None:
            if not ahead:
                try:
                    following = next(source, None)
                except Exception as exc:  # raised below, once this group's replies are read and yielded
                    ahead.append(exc)
                    return
                if following is not None:
                    ahead.append(following)

        try:
            while True:
                message = ahead.pop() if ahead else next(source, None)
                if isinstance(message, Exception):
                    raise message
                if message is None:
                    break
                problem = _address_problem(message.envelope_from, message.recipient)
                if problem is not None:
                    yield message.key, problem
                    continue
                raw = self._sign(message.raw) if self._sign is not None else message.raw
                yield from self._advance(_InFlight(message.key, message.envelope_from, message.recipient, raw),
                                         look_ahead)
            yield from self._advance(None, look_ahead)
        finally:
            self._withdrawn = None
            if self._open is not None:
                self._drop()

    def _advance(self, message: _InFlight | None, while_waiting: Callable[[], None]) -> Iterator[Outcome]:
        """Put one message on its way, or with None end the open one; yield outcomes as they come."""
        finishing = message is None
        queue: deque[_InFlight] = deque([] if message is None else [message])
        while queue or (finishing and self._open is not None):
            if self._open is not None and (not queue or self._limiter is not None or self._full()):
                # End the open message on its own: nothing follows, the connection is full, or a rate
                # limit counts a message once its content is out.
                outcomes, again = self._exchange(None, while_waiting)
            else:
                next_message = queue.popleft()
                if self._full():
                    self.close()
                if self._limiter is not None:
                    self._limiter.wait()
                smtp = self._connection()
                if self._pipelining:
                    outcomes, again = self._exchange(next_message, while_waiting)
                else:
                    outcomes, again = self._step_by_step(smtp, next_message)
            yield from outcomes
            queue.extendleft(reversed(again))

    def _full(self) -> bool:
        return self._smtp is not None and self._started_on_connection >= self._max_per_connection

    def _exchange(
        self, message: _InFlight | None, while_waiting: Callable[[], None]
    ) -> tuple[list[Outcome], list[_InFlight]]:
        """One write and its replies: the open message's content and end, then RSET if a refusal
        left the server mid-transaction, then `message`'s MAIL, RCPT and DATA. `while_waiting` runs
        between the two, while the server reads."""
        assert self._smtp is not None
        ended = self._open
        outcomes: list[Outcome] = []
        if self._withdrawn is not None:
            gone = self._withdrawn([m.key for m in (ended, message) if m is not None])
            if gone:
                if message is not None and message.key in gone:
                    outcomes.append((message.key, Withdrawn(gone[message.key])))
                    message = None
                if ended is not None and ended.key in gone:
                    self._drop()  # hanging up in DATA is the only way to take a message back
                    outcomes.append((ended.key, Withdrawn(gone[ended.key])))
                    return outcomes, [] if message is None else [message]
                if ended is None and message is None:
                    return outcomes, []
        in_flight = [m for m in (ended, message) if m is not None]
        parts: list[bytes] = []
        if ended is not None:
            parts.append(_content(ended.raw))
        reset = message is not None and self._needs_reset
        if message is not None:
            if reset:
                parts.append(b"RSET\r\n")
            size = f" SIZE={len(message.raw)}" if self._size else ""
            parts.append(f"MAIL FROM:<{message.envelope_from}>{size}\r\nRCPT TO:<{message.recipient}>\r\nDATA\r\n"
                         .encode("ascii"))
            message.on_used_connection = self._started_on_connection > 0
            self._started_on_connection += 1
        try:
            _socket(self._smtp).sendall(b"".join(parts))
        except OSError as exc:
            return self._broken(exc, outcomes, in_flight)
        try:
            while_waiting()
        except BaseException:
            self._drop()  # interrupted with replies unread: this connection cannot be used again
            raise
        try:
            return self._read_group(ended, message, reset, outcomes, in_flight)
        except OSError as exc:
            return self._broken(exc, outcomes, in_flight)

    def _read_group(
        self, ended: _InFlight | None, message: _InFlight | None, reset: bool, outcomes: list[Outcome],
        in_flight: list[_InFlight],
    ) -> tuple[list[Outcome], list[_InFlight]]:
        """The replies to one group, in order; `in_flight` keeps the messages still without an outcome."""
        assert self._smtp is not None and self._replies is not None
        replies = self._replies
        if ended is not None:
            self._open = None
            code, text = replies.read()
            in_flight.remove(ended)
            outcomes.append((ended.key, None if code == 250 else self._refused(code, text)))
            if self._smtp is None:  # the server is closing (421): the envelope after it is lost
                return self._lost(outcomes, in_flight, "the server closed the connection")
        if message is None:
            return outcomes, []
        if reset:
            code, _text = replies.read()
            self._needs_reset = False
            if code == 421:
                return self._lost(outcomes, in_flight, "the server closed the connection", drop=True)
        answers: list[tuple[int, bytes]] = []
        while len(answers) < 3 and (not answers or answers[-1][0] != 421):
            answers.append(replies.read())
        in_flight.remove(message)
        refusal = next(((c, t) for (c, t), ok in zip(answers, _ACCEPTED, strict=False) if c not in ok), None)
        if refusal is None:
            self._open = message
            return outcomes, []
        if answers[-1][0] == 354:  # a server that opened DATA anyway: close it empty
            _socket(self._smtp).sendall(b".\r\n")
            replies.read()
        outcomes.append((message.key, self._refused(*refusal)))
        self._needs_reset = self._smtp is not None
        return outcomes, []

    def _broken(
        self, exc: OSError, outcomes: list[Outcome], in_flight: list[_InFlight]
    ) -> tuple[list[Outcome], list[_InFlight]]:
        """The socket failed mid-conversation: a timeout fails what was in flight, a lost connection
        may be retried once (see _lost), anything else fails it."""
        if isinstance(exc, (socket.timeout, TimeoutError)):
            return self._lost(outcomes, in_flight, f"timed out: {exc}", drop=True, retry=False)
        if isinstance(exc, (smtplib.SMTPServerDisconnected, ConnectionError)):
            return self._lost(outcomes, in_flight, f"connection lost: {exc}", drop=True)
        return self._lost(outcomes, in_flight, f"connection error: {exc}", drop=True, retry=False)

    def _step_by_step(self, smtp: smtplib.SMTP, message: _InFlight) -> tuple[list[Outcome], list[_InFlight]]:
        """A server without PIPELINING: smtplib's sendmail, which also sends RSET after a refusal."""
        gone = self._withdrawn([message.key]) if self._withdrawn is not None else {}
        if message.key in gone:
            return [(message.key, Withdrawn(gone[message.key]))], []
        message.on_used_connection = self._started_on_connection > 0
        self._started_on_connection += 1
        try:
            smtp.sendmail(message.envelope_from, [message.recipient], message.raw)
        except smtplib.SMTPRecipientsRefused as exc:
            code, response = exc.recipients.get(message.recipient, (450, b"recipient refused"))
            return [(message.key, self._refused(code, response))], []
        except smtplib.SMTPResponseException as exc:  # sender refused, data refused, ...
            return [(message.key, self._refused(exc.smtp_code, exc.smtp_error))], []
        except OSError as exc:
            return self._broken(exc, [], [message])
        return [(message.key, None)], []

    def _lost(
        self, outcomes: list[Outcome], in_flight: list[_InFlight], reason: str, *, drop: bool = False,
        retry: bool = True,
    ) -> tuple[list[Outcome], list[_InFlight]]:
        """The connection went with messages in flight. One whose envelope went on a connection that
        had carried mail before is sent once more on a new one (the server may have closed an idle
        connection); one on a fresh connection, or already retried, fails for now (S4 retries it later)."""
        if drop:
            self._drop()
        again: list[_InFlight] = []
        for message in in_flight:
            if retry and message.may_retry and message.on_used_connection:
                message.may_retry = False
                again.append(message)
            else:
                outcomes.append((message.key, TransientFailure(None, reason)))
        return outcomes, again

    def _refused(self, code: int, response: bytes | str) -> SendFailure:
        """The failure for a refusal at any step; 421 means the server is closing: never reuse it."""
        if code == 421 or not 200 <= code < 600:
            self._drop()
        return failure_from_code(code, response)

    def _connection(self) -> smtplib.SMTP:
        if self._smtp is None:
            try:
                smtp = self._open_connection()
            except (OSError, smtplib.SMTPException) as exc:
                raise ServerUnavailable(None, f"cannot connect to the mail server: {exc}") from None
            self._smtp, self._started_on_connection = smtp, 0
            self._pipelining = smtp.has_extn("pipelining")
            self._size = smtp.has_extn("size")
            self._replies = _Replies(_socket(smtp)) if self._pipelining else None
            self.connections_opened += 1
        return self._smtp

    def _drop(self) -> None:
        smtp, self._smtp = self._smtp, None
        self._open, self._needs_reset, self._replies = None, False, None
        if smtp is not None:
            with contextlib.suppress(OSError):
                smtp.close()

    def close(self) -> None:
        """Say QUIT politely; a connection that is already gone, or has a message open, is just dropped."""
        if self._open is not None:
            self._drop()
            return
        smtp, self._smtp = self._smtp, None
        self._needs_reset, self._replies = False, None
        if smtp is not None:
            try:
                smtp.quit()
            except (OSError, smtplib.SMTPException):
                with contextlib.suppress(OSError):
                    smtp.close()

    def __enter__(self) -> SmtpTransport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
