"""A real SMTP server on loopback (aiosmtpd) that keeps what it receives, for tests and benchmarks.

It can answer chosen recipients with errors (like Mailman's testing MTA), be slowed
down, stopped and started again on the same port. It records the commands each
connection sent, and can advertise PIPELINING, offer STARTTLS or implicit TLS, and
require AUTH."""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session


def free_port() -> int:
    """aiosmtpd's Controller cannot take port 0, so find a free port first."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    connection: int = 0  # which connection (1, 2, ...) carried it, see SmtpSink.commands
    tls: bool = False  # the connection was encrypted (STARTTLS or implicit TLS)
    login: str | None = None  # the AUTH user of the connection, if any
    arrived_at: float = 0.0  # time.time() when its end of data had arrived, before any slow-down

    @property
    def message(self) -> EmailMessage:
        return BytesParser(policy=policy.default).parsebytes(self.raw)  # type: ignore[return-value]


@dataclass
class _Rules:
    rcpt_replies: dict[str, list[str]] = field(default_factory=dict)  # address -> queued replies
    mail_replies: dict[str, list[str]] = field(default_factory=dict)  # sender -> queued MAIL FROM replies
    data_replies: dict[str, list[str]] = field(default_factory=dict)  # recipient -> queued end-of-DATA replies
    delay_seconds: float = 0.0
    drop_every: int = 0  # close the connection abruptly at every Nth message on a connection


def _next_reply(lock: threading.Lock, table: dict[str, list[str]], key: str) -> str | None:
    with lock:
        queued = table.get(key.lower())
        reply = queued.pop(0) if queued else None
        if queued is not None and not queued:
            del table[key.lower()]
    return reply


class _Handler:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_EHLO(self, server: SMTP, session: Session, envelope: Envelope, hostname: str,
                          responses: list[str]) -> list[str]:
        # With this (5-argument) hook aiosmtpd no longer records the client's name itself.
        session.host_name = hostname
        if self.sink.pipelining:
            # Every line but the last is "250-..."; the last one ("250 HELP") stays last.
            responses = [*responses[:-1], "250-PIPELINING", responses[-1]]
        return responses

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          options: list[str]) -> str:
        if self.sink._credentials is not None and not session.authenticated:
            return "530 5.7.0 Authentication required"
        reply = _next_reply(self.sink._lock, self.sink._rules.mail_replies, address)
        if reply is not None and not reply.startswith("250"):
            return reply
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        reply = _next_reply(self.sink._lock, self.sink._rules.rcpt_replies, address)
        if reply is not None and not reply.startswith("250"):
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        arrived_at = time.time()
        with self.sink._cond:
            self.sink.arrivals.append(list(envelope.rcpt_tos))
            self.sink._cond.notify_all()
        if getattr(server, "_reader", None) is not None and getattr(server._reader, "_buffer", b""):
            # The next commands came in the same write as this message's end of data.
            with self.sink._lock:
                self.sink.pipelined.append((getattr(server, "mailer_connection", 0), "END"))
        delay = self.sink._rules.delay_seconds
        if delay:
            await asyncio.sleep(delay)
        drop_every = self.sink._rules.drop_every
        if drop_every:
            count = getattr(session, "mailer_count", 0) + 1
            session.mailer_count = count  # type: ignore[attr-defined]
            if count % drop_every == 0:
                self.sink.dropped += 1
                server.transport.abort()  # like a relay that goes away mid-transaction: not accepted
                return "421 4.4.2 connection dropped"
        if envelope.rcpt_tos:
            reply = _next_reply(self.sink._lock, self.sink._rules.data_replies, envelope.rcpt_tos[0])
            if reply is not None and not reply.startswith("250"):
                return reply
        login = session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None
        item = Received(envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.content),
                        connection=getattr(server, "mailer_connection", 0),
                        tls=server.transport is not None and server.transport.get_extra_info("ssl_object") is not None,
                        login=login, arrived_at=arrived_at)
        with self.sink._cond:
            self.sink.received.append(item)
            self.sink._cond.notify_all()
        return "250 Message accepted for delivery"


class _RecordingSMTP(SMTP):
    """aiosmtpd's SMTP, noting each command it is about to handle (aiosmtpd has no hook for RSET or QUIT)."""

    def __init__(self, handler: _Handler, **kwargs: object) -> None:
        super().__init__(handler, **kwargs)  # type: ignore[arg-type]
        self.mailer_connection = 0  # numbered at the first command, so the Controller's start-up probe is not counted
        for verb, method in list(self._smtp_methods.items()):
            self._smtp_methods[verb] = self._recorded(handler.sink, verb, method)

    def _recorded(self, sink: SmtpSink, verb: str,
                  method: Callable[[str | None], Awaitable[None]]) -> Callable[[str | None], Awaitable[None]]:
        async def call(arg: str | None) -> None:
            # Bytes already waiting behind this command: the client sent more without waiting for our reply.
            waiting = bool(getattr(self._reader, "_buffer", b""))
            sink._record(self, verb, waiting)
            await method(arg)

        return call


class _Controller(Controller):
    def factory(self) -> SMTP:
        return _RecordingSMTP(self.handler, **self.SMTP_kwargs)


class SmtpSink:
    """aiosmtpd on 127.0.0.1 with its default line-length and size limits.

    pipelining: advertise PIPELINING in the EHLO reply (aiosmtpd reads commands line by line,
    so pipelined commands work; it just does not say so).
    tls_context: offer STARTTLS with this server context; require_starttls refuses mail before it.
    ssl_context: implicit TLS (SMTPS) from the first byte.
    credentials: {user: password}; AUTH is then required before MAIL. aiosmtpd offers AUTH only on
    a STARTTLS-encrypted connection unless auth_require_tls is False (the default with ssl_context,
    which aiosmtpd does not count as TLS).
    idle_timeout: close a connection that sent nothing for this many seconds (aiosmtpd's default is 300).
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        pipelining: bool = False,
        tls_context: ssl.SSLContext | None = None,
        require_starttls: bool = False,
        ssl_context: ssl.SSLContext | None = None,
        credentials: dict[str, str] | None = None,
        auth_require_tls: bool | None = None,
        idle_timeout: float | None = None,
    ) -> None:
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.received: list[Received] = []
        self.arrivals: list[list[str]] = []  # each message's recipients as its data arrives, before any slow-down
        self.dropped = 0
        self.pipelining = pipelining
        self.commands: list[tuple[int, str]] = []  # (connection number, verb) in the order handled
        # Commands that arrived with a further command already waiting, and ("END") message contents
        # whose end of data came with the next commands behind it.
        self.pipelined: list[tuple[int, str]] = []
        self.logins: list[tuple[int, str]] = []  # successful AUTH: (connection number, user)
        self.refused_logins: list[tuple[int, str]] = []
        self.connections = 0  # connections that sent at least one command
        self._tls_context = tls_context
        self._require_starttls = require_starttls
        self._ssl_context = ssl_context
        self._credentials = dict(credentials) if credentials is not None else None
        self._auth_require_tls = (ssl_context is None) if auth_require_tls is None else auth_require_tls
        self._idle_timeout = idle_timeout
        self._rules = _Rules()
        self._lock = threading.Lock()
        self._cond = threading.Condition()
        self._controller: Controller | None = None

    def start(self) -> SmtpSink:
        options: dict[str, object] = {}
        if self._tls_context is not None:
            options.update(tls_context=self._tls_context, require_starttls=self._require_starttls)
        if self._ssl_context is not None:
            options["ssl_context"] = self._ssl_context
        if self._credentials is not None:
            # AUTH is required in handle_MAIL: aiosmtpd's auth_required warns when TLS is not required as well.
            options.update(authenticator=self._authenticate, auth_require_tls=self._auth_require_tls)
        if self._idle_timeout is not None:
            options["timeout"] = self._idle_timeout
        self._controller = _Controller(_Handler(self), hostname=self.host, port=self.port, server_hostname="sink.test",
                                       **options)
        self._controller.start()
        return self

    def _record(self, server: _RecordingSMTP, verb: str, waiting: bool) -> None:
        with self._lock:
            if not server.mailer_connection:
                self.connections += 1
                server.mailer_connection = self.connections
            self.commands.append((server.mailer_connection, verb))
            if waiting:
                self.pipelined.append((server.mailer_connection, verb))

    def _authenticate(self, server: SMTP, session: Session, envelope: Envelope, mechanism: str,
                      auth_data: object) -> AuthResult:
        assert self._credentials is not None
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        user = auth_data.login.decode("utf-8", "replace")
        ok = self._credentials.get(user) == auth_data.password.decode("utf-8", "replace")
        with self._lock:
            (self.logins if ok else self.refused_logins).append((getattr(server, "mailer_connection", 0), user))
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    def verbs(self, connection: int) -> list[str]:
        """The commands one connection sent, in order: ["EHLO", "MAIL", "RCPT", "DATA", ..., "QUIT"]."""
        with self._lock:
            return [verb for number, verb in self.commands if number == connection]

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    @property
    def running(self) -> bool:
        return self._controller is not None

    def reply_to_rcpt(self, address: str, *replies: str) -> None:
        """Answer RCPT TO for this address with these replies in turn, then accept."""
        with self._lock:
            self._rules.rcpt_replies.setdefault(address.lower(), []).extend(replies)

    def reply_to_mail(self, sender: str, *replies: str) -> None:
        """Answer MAIL FROM for this sender with these replies in turn, then accept."""
        with self._lock:
            self._rules.mail_replies.setdefault(sender.lower(), []).extend(replies)

    def reply_to_data(self, recipient: str, *replies: str) -> None:
        """Answer the end of DATA of messages to this (first) recipient with these replies in turn, then accept."""
        with self._lock:
            self._rules.data_replies.setdefault(recipient.lower(), []).extend(replies)

    def slow_down(self, seconds: float) -> None:
        self._rules.delay_seconds = seconds

    def drop_connection_every(self, count: int) -> None:
        self._rules.drop_every = count

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        """Block until `count` messages arrived; fail showing what did arrive."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.received) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    subjects = [r.message["Subject"] for r in self.received]
                    raise AssertionError(f"expected {count} message(s), got {len(self.received)}: {subjects}")
                self._cond.wait(left)
            return list(self.received)

    def wait_for_arrival(self, count: int, timeout: float = 10.0) -> list[list[str]]:
        """Block until the data of `count` messages has arrived (before a slow-down delays their answer)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.arrivals) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"expected {count} message(s) to arrive, got {len(self.arrivals)}")
                self._cond.wait(left)
            return list(self.arrivals)

    def to(self, address: str) -> list[Received]:
        with self._cond:
            return [r for r in self.received if address.lower() in (a.lower() for a in r.rcpt_tos)]

    def clear(self) -> None:
        with self._cond:
            self.received.clear()
            self.arrivals.clear()

    def __enter__(self) -> SmtpSink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
