"""The bounce port (issue 8): an aiosmtpd server that stores what arrives at the bounce address.

For operators who point an MX or an alias at it. Each message is committed to the
bounce_message table before the server answers 250, so a message the relay thinks it
handed over is never lost; the worker reads and counts it later (mailer.bounces). A
message over the size limit is refused with 552 and nothing is stored.

Anyone on the network can talk to the port, so it takes only what a bounce can be (issue 15):
mail for the bounce address or a VERP address we signed (anything else is 550 at RCPT), small
messages (a DSN is a few kilobytes; MAILER_BOUNCE_MAX_BYTES, 256 KB), a limited number per
client a minute, and nothing more while too many stored ones still wait for the worker (452,
so a real relay keeps them and tries again later).

`flask --app wsgi bounce-server` runs it in its own process; tests start it on a free port."""

from __future__ import annotations

import asyncio
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

from .bounces import count_unprocessed_bounce_messages, store_bounce_message
from .errors import BounceTooLarge
from .extensions import db
from .settings import settings_of
from .transaction import transaction

log = logging.getLogger(__name__)

Store = Callable[[bytes, str, list[str]], int]


class BounceHandler:
    """Refuses what no bounce looks like, and stores each accepted message before answering."""

    def __init__(
        self,
        store: Store,
        max_bytes: int,
        *,
        accepts: Callable[[str], bool] = lambda _address: True,
        per_client_per_minute: int = 0,
        unprocessed: Callable[[], int] | None = None,
        max_unprocessed: int = 0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.max_bytes = max_bytes
        self.accepts = accepts
        self.per_client_per_minute = per_client_per_minute
        self.unprocessed = unprocessed
        self.max_unprocessed = max_unprocessed
        self.monotonic = monotonic
        self._recent: dict[str, deque[float]] = {}

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str, mail_options: list[str]) -> str:
        client = str((session.peer or ("?",))[0])
        if self._too_many_from(client):
            log.warning("bounce server: a client sent more than %d messages a minute; refused for now",
                        self.per_client_per_minute)
            return "450 4.7.1 Too many messages from your address, try again later"
        if self.unprocessed is not None and self.max_unprocessed > 0:
            waiting = await asyncio.get_running_loop().run_in_executor(None, self.unprocessed)
            if waiting >= self.max_unprocessed:
                log.warning("bounce server: %d stored messages wait for the worker; refusing more for now", waiting)
                return "452 4.3.1 Bounce mailbox full, try again later"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]) -> str:
        if not self.accepts(address):
            return "550 5.1.1 No such mailbox here: this server only takes bounces"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        content = envelope.content
        raw = content.encode("utf-8", "surrogateescape") if isinstance(content, str) else bytes(content)
        if len(raw) > self.max_bytes:
            return "552 5.3.4 Message too big for the bounce mailbox"
        loop = asyncio.get_running_loop()
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
                with transaction(db.session):
                    return store_bounce_message(
                        db.session, raw, mail_from=mail_from, rcpt_tos=rcpt_tos, source="smtp",
                        max_bytes=max_bytes, clock=app.extensions["mailer.clock"],
                    )
            finally:
                db.session.remove()

    return store


def unprocessed_count_for_app(app: Flask) -> Callable[[], int]:
    def count() -> int:
        with app.app_context():
            try:
                return count_unprocessed_bounce_messages(db.session)
            finally:
                db.session.remove()

    return count


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
        unprocessed=unprocessed_count_for_app(app),
        max_unprocessed=settings.bounce_max_unprocessed,
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
