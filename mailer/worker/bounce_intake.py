"""The bounce intake bound to an app: the bounce port's server and the stores both intakes write through.

mailer.bounces.smtp_server and mailer.bounces.imap know nothing of Flask; here each stored message
gets its own app context and transaction (issue 8). `flask --app wsgi bounce-server` runs
run_bounce_server; the worker polls the IMAP mailbox with store_for_app(app, ..., "imap")."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from dataclasses import replace

from aiosmtpd.controller import Controller
from flask import Flask

from mailer.bounces.records import BounceBacklog, store_bounce_message, unprocessed_bounce_backlog
from mailer.bounces.smtp_server import BounceHandler, Store
from mailer.extensions import db
from mailer.settings import settings_of
from mailer.transaction import transaction

log = logging.getLogger(__name__)


def store_for_app(app: Flask, max_bytes: int, source: str) -> Store:
    """A store that commits each message in its own app context and transaction; `source` is smtp or imap."""

    def store(raw: bytes, mail_from: str, rcpt_tos: list[str]) -> int:
        with app.app_context():
            try:
                with transaction(db.session()):
                    return store_bounce_message(
                        db.session(), raw, mail_from=mail_from, rcpt_tos=rcpt_tos, source=source,
                        max_bytes=max_bytes, clock=app.extensions["mailer.clock"],
                    )
            finally:
                db.session.remove()

    return store


def backlog_for_app(app: Flask) -> Callable[[], BounceBacklog]:
    """What the bounce port asks before it takes more: how much still waits for the worker."""

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
        store_for_app(app, settings.bounce_max_bytes, "smtp"),
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
