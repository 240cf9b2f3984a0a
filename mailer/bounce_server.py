"""The bounce port (issue 8): an aiosmtpd server that stores what arrives at the bounce address.

For operators who point an MX or an alias at it. Each message is committed to the
bounce_message table before the server answers 250, so a message the relay thinks it
handed over is never lost; the worker reads and counts it later (mailer.bounces). A
message over the size limit is refused with 552 and nothing is stored.

`flask --app wsgi bounce-server` runs it in its own process; tests start it on a free port."""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Callable
from typing import Any

from aiosmtpd.controller import Controller
from flask import Flask

from .bounces import store_bounce_message
from .errors import BounceTooLarge
from .extensions import db
from .transaction import transaction

log = logging.getLogger(__name__)

Store = Callable[[bytes, str, list[str]], int]


class BounceHandler:
    """Accepts any recipient (the VERP token decides later) and stores each message before answering."""

    def __init__(self, store: Store, max_bytes: int) -> None:
        self.store = store
        self.max_bytes = max_bytes

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


def store_for_app(app: Flask) -> Store:
    """A store that commits each message in its own app context and transaction."""
    max_bytes = int(app.config["MAILER_BOUNCE_MAX_BYTES"])

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


def bounce_controller(app: Flask, *, host: str | None = None, port: int | None = None) -> Controller:
    """An unstarted Controller for this app; aiosmtpd itself also refuses DATA over the limit (SIZE)."""
    max_bytes = int(app.config["MAILER_BOUNCE_MAX_BYTES"])
    return Controller(
        BounceHandler(store_for_app(app), max_bytes),
        hostname=host or app.config["MAILER_BOUNCE_SMTP_HOST"],
        port=port or int(app.config["MAILER_BOUNCE_SMTP_PORT"]),
        data_size_limit=max_bytes,
        server_hostname=app.config.get("MAILER_MESSAGE_ID_DOMAIN") or "localhost",
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
