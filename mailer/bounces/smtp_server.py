"""The bounce port (issue 8): an aiosmtpd server that stores what arrives at the bounce address.

For operators who point an MX or an alias at it. Each message is committed to the
bounce_message table before the server answers 250, so a message the relay thinks it
handed over is never lost; the worker reads and counts it later (mailer.bounces.records). A
message over the size limit is refused with 552 and nothing is stored.

Anyone on the network can talk to the port, so it takes only what a bounce can be (issue 15):
mail for the bounce address or a VERP address we signed (anything else is 550 at RCPT), small
messages (a DSN is a few kilobytes; MAILER_BOUNCE_MAX_BYTES, 256 KB), a limited number per
client (IPv6: per /64) a minute, at most MAX_RECIPIENTS recipients a message, and nothing more
while too many stored ones, or too many bytes, still wait for the worker (452, so a real relay
keeps them and tries again later; nothing is dropped).

`flask --app wsgi bounce-server` runs it in its own process; tests start it on a free port."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from aiosmtpd.controller import Controller
from flask import Flask

from mailer.bounces.records import BounceBacklog, store_bounce_message, unprocessed_bounce_backlog
from mailer.errors import BounceTooLarge
from mailer.extensions import db
from mailer.settings import settings_of
from mailer.transaction import transaction

log = logging.getLogger(__name__)

Store = Callable[[bytes, str, list[str]], int]

# A bounce names one recipient (the VERP address); a relay may batch a few for the plain bounce
# address. More than this in one message is no bounce: 452, as RFC 5321 says for too many.
MAX_RECIPIENTS = 50


def client_key(peer: Any) -> str:
    """Whom the per-client limit counts: the IP address, or the /64 for IPv6 (one host's usual
    share), so a client cannot get a fresh allowance from each address of its own network."""
    host = str(peer[0]) if isinstance(peer, (tuple, list)) and peer else "?"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


class BounceHandler:
    """Refuses what no bounce looks like, and stores each accepted message before answering."""

    def __init__(
        self,
        store: Store,
        max_bytes: int,
        *,
        accepts: Callable[[str], bool] = lambda _address: True,
        per_client_per_minute: int = 0,
        backlog: Callable[[], BounceBacklog] | None = None,
        max_unprocessed: int = 0,
        max_unprocessed_bytes: int = 0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.max_bytes = max_bytes
        self.accepts = accepts
        self.per_client_per_minute = per_client_per_minute
        self.backlog = backlog
        self.max_unprocessed = max_unprocessed
        self.max_unprocessed_bytes = max_unprocessed_bytes
        self.monotonic = monotonic
        self._recent: dict[str, deque[float]] = {}
        # Messages are stored one at a time, each after a fresh look at the backlog, so the cap holds
        # exactly however many clients reach DATA together (the check at MAIL only saves their time).
        self._storing = asyncio.Lock()

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str, mail_options: list[str]) -> str:
        if self._too_many_from(client_key(session.peer)):
            log.warning("bounce server: a client sent more than %d messages a minute; refused for now",
                        self.per_client_per_minute)
            return "450 4.7.1 Too many messages from your address, try again later"
        refusal = await self._backlog_refusal(incoming=0)
        if refusal:
            return refusal
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]) -> str:
        if not self.accepts(address):
            return "550 5.1.1 No such mailbox here: this server only takes bounces"
        if len(envelope.rcpt_tos) >= MAX_RECIPIENTS:
            return "452 4.5.3 Too many recipients"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        content = envelope.content
        raw = content.encode("utf-8", "surrogateescape") if isinstance(content, str) else bytes(content)
        if len(raw) > self.max_bytes:
            return "552 5.3.4 Message too big for the bounce mailbox"
        loop = asyncio.get_running_loop()
        async with self._storing:
            refusal = await self._backlog_refusal(incoming=len(raw))
            if refusal:
                return refusal
            try:
                message_id = await loop.run_in_executor(
                    None, self.store, raw, envelope.mail_from or "", list(envelope.rcpt_tos)
                )
            except BounceTooLarge:
                return "552 5.3.4 Message too big for the bounce mailbox"
            except Exception:
                log.exception("bounce server: could not store a message")
                return "451 4.3.0 Could not store the message, try again later"
        log.info("bounce server: stored message %d (%d bytes)", message_id, len(raw))
        return "250 2.0.0 Stored"

    async def _backlog_refusal(self, *, incoming: int) -> str | None:
        """A 4xx while too much waits for the worker (a real relay keeps the message and tries again
        later; nothing is dropped), else None. `incoming`: the size of the message about to be stored."""
        if self.backlog is None or (self.max_unprocessed <= 0 and self.max_unprocessed_bytes <= 0):
            return None
        try:
            backlog = await asyncio.get_running_loop().run_in_executor(None, self.backlog)
        except Exception:
            log.exception("bounce server: could not count the stored messages")
            return "451 4.3.0 Could not store the message, try again later"
        too_many = 0 < self.max_unprocessed <= backlog.messages
        too_big = self.max_unprocessed_bytes > 0 and (
            backlog.size >= self.max_unprocessed_bytes or backlog.size + incoming > self.max_unprocessed_bytes
        )
        if too_many or too_big:
            log.warning("bounce server: %d stored messages (%d bytes) wait for the worker; refusing more for now",
                        backlog.messages, backlog.size)
            return "452 4.3.1 Bounce mailbox full, try again later"
        return None

    def _too_many_from(self, client: str) -> bool:
        """Counts this MAIL against the client; True when it is over the limit for the last 60 seconds."""
        if self.per_client_per_minute <= 0:
            return False
        now = self.monotonic()
        recent = self._recent.setdefault(client, deque())
        while recent and now - recent[0] >= 60:
            recent.popleft()
        if len(recent) >= self.per_client_per_minute:
            return True
        recent.append(now)
        if len(self._recent) > 10_000:  # forget quiet clients, so the table cannot grow without end
            for quiet in [c for c, times in self._recent.items() if not times or now - times[-1] >= 60]:
                del self._recent[quiet]
        return False


def store_for_app(app: Flask, max_bytes: int) -> Store:
    """A store that commits each message in its own app context and transaction."""

    def store(raw: bytes, mail_from: str, rcpt_tos: list[str]) -> int:
        with app.app_context():
            try:
                with transaction(db.session()):
                    return store_bounce_message(
                        db.session(), raw, mail_from=mail_from, rcpt_tos=rcpt_tos, source="smtp",
                        max_bytes=max_bytes, clock=app.extensions["mailer.clock"],
                    )
            finally:
                db.session.remove()

    return store


def backlog_for_app(app: Flask) -> Callable[[], BounceBacklog]:
    def backlog() -> BounceBacklog:
        with app.app_context():
            try:
                return unprocessed_bounce_backlog(db.session())
            finally:
                db.session.remove()

    return backlog


def bounce_controller(app: Flask, *, host: str | None = None, port: int | None = None) -> Controller:
    """An unstarted Controller for this app; aiosmtpd itself also refuses DATA over the limit (SIZE)."""
    settings = settings_of(app)
    policy = settings.bounce_policy
    if not policy.bounce_address:  # no bounce address: bounces come back to the sender's own address
        policy = replace(policy, bounce_address=settings.from_address)
    handler = BounceHandler(
        store_for_app(app, settings.bounce_max_bytes),
        settings.bounce_max_bytes,
        accepts=policy.accepts_recipient,
        per_client_per_minute=settings.bounce_messages_per_minute,
        backlog=backlog_for_app(app),
        max_unprocessed=settings.bounce_max_unprocessed,
        max_unprocessed_bytes=settings.bounce_max_unprocessed_bytes,
    )
    return Controller(
        handler,
        hostname=host or settings.bounce_smtp_host,
        port=port or settings.bounce_smtp_port,
        data_size_limit=settings.bounce_max_bytes,
        server_hostname=settings.configured_message_id_domain or "localhost",
    )


def run_bounce_server(app: Flask, *, host: str | None = None, port: int | None = None) -> None:
    """Serve until SIGTERM or Ctrl-C."""
    controller = bounce_controller(app, host=host, port=port)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    controller.start()
    log.info("bounce server: listening on %s:%s", controller.hostname, controller.port)
    try:
        stop.wait()
    finally:
        controller.stop()
        log.info("bounce server: stopped")
