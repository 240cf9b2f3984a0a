"""A real SMTP server on loopback (aiosmtpd) that keeps what it receives, for tests and benchmarks.

It can answer chosen recipients with errors (like Mailman's testing MTA), be slowed
down, stopped and started again on the same port."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session


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

    @property
    def message(self) -> EmailMessage:
        return BytesParser(policy=policy.default).parsebytes(self.raw)  # type: ignore[return-value]


@dataclass
class _Rules:
    rcpt_replies: dict[str, list[str]] = field(default_factory=dict)  # address -> queued replies
    delay_seconds: float = 0.0
    drop_every: int = 0  # close the connection abruptly at every Nth message on a connection


class _Handler:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]) -> str:
        with self.sink._lock:
            queued = self.sink._rules.rcpt_replies.get(address.lower())
            reply = queued.pop(0) if queued else None
            if queued is not None and not queued:
                del self.sink._rules.rcpt_replies[address.lower()]
        if reply is not None and not reply.startswith("250"):
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
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
        item = Received(envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.content))
        with self.sink._cond:
            self.sink.received.append(item)
            self.sink._cond.notify_all()
        return "250 Message accepted for delivery"


class SmtpSink:
    """aiosmtpd on 127.0.0.1 with its default line-length and size limits."""

    def __init__(self, port: int | None = None) -> None:
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.received: list[Received] = []
        self.dropped = 0
        self._rules = _Rules()
        self._lock = threading.Lock()
        self._cond = threading.Condition()
        self._controller: Controller | None = None

    def start(self) -> SmtpSink:
        self._controller = Controller(_Handler(self), hostname=self.host, port=self.port, server_hostname="sink.test")
        self._controller.start()
        return self

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

    def to(self, address: str) -> list[Received]:
        with self._cond:
            return [r for r in self.received if address.lower() in (a.lower() for a in r.rcpt_tos)]

    def clear(self) -> None:
        with self._cond:
            self.received.clear()

    def __enter__(self) -> SmtpSink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
