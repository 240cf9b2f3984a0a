"""Assemble the engine's parts from an app's configuration and run one tick.

The worker, `send-due` and tests all come through here, so they send the same way."""

from __future__ import annotations

import logging
import os
import smtplib
import time
from collections.abc import Callable
from functools import partial
from typing import cast

from flask import Flask

from mailer.bounces.imap import poll_bounce_mailbox
from mailer.bounces.records import BounceSummary, process_bounce_messages
from mailer.engine.announcement_sender import DeliveryQueue
from mailer.engine.departures import Departures, departures_for
from mailer.engine.outbox_sender import OutboxQueue
from mailer.engine.queue import release_expired_claims
from mailer.engine.rate_limit import RateLimiter
from mailer.engine.tick import TickSummary, run_tick
from mailer.engine.transport import SmtpTransport
from mailer.extensions import db
from mailer.mail.announcement import AnnouncementMail
from mailer.mail.transactional import TransactionalMail
from mailer.members.forum_details import forum_details
from mailer.members.membership import MembershipPolicy, process_join_requests
from mailer.settings import Settings, settings_of
from mailer.transaction import transaction
from mailer.worker.bounce_intake import store_for_app
from mailer.worker.smtp_connection import flask_mail_opener

log = logging.getLogger(__name__)


def rate_limiter_for(app: Flask, per_minute: int) -> RateLimiter | None:
    """The worker's rate limit lives as long as the app, so its window spans ticks."""
    if per_minute <= 0:
        return None
    limiter = app.extensions.get("mailer.rate_limiter")
    if limiter is None or limiter.per_minute != per_minute:
        sleep = app.extensions.get("mailer.sleep", time.sleep)
        limiter = RateLimiter(per_minute, app.extensions["mailer.clock"], sleep)
        app.extensions["mailer.rate_limiter"] = limiter
    return limiter


def departures_of(app: Flask) -> Departures | None:
    """The process's departure source (J4): made once per process (its connection is not shared with a
    forked child) and kept while the app lives."""
    held = app.extensions.get("mailer.departures")
    if held is not None and held[0] == os.getpid():
        return cast(Departures | None, held[1])
    departures = departures_for(db.engine.url)
    app.extensions["mailer.departures"] = (os.getpid(), departures)
    return departures


def smtp_opener_for(app: Flask, settings: Settings, timeout: float | None = None) -> Callable[[], smtplib.SMTP]:
    """Connections as the worker opens them: Flask-Mail's MAIL_* settings, our timeout and CA file."""
    return flask_mail_opener(
        app.extensions["mail"],
        settings.smtp_timeout if timeout is None else timeout,
        ca_file=settings.smtp_ca_file or None,
    )


def run_tick_for_app(
    app: Flask, *, settings: Settings | None = None, on_batch: Callable[[TickSummary], None] | None = None
) -> TickSummary:
    """One pass over due work inside its own app context (jobs get no ORM objects).

    `settings` are the app's unless given: a worker's sending process passes its own share."""
    settings = settings or settings_of(app)
    with app.app_context():
        settings = with_forum_details(settings)
        clock = app.extensions["mailer.clock"]
        opener = smtp_opener_for(app, settings)
        mail = TransactionalMail.from_settings(app.jinja_env, settings, clock=clock)
        announcement_mail = AnnouncementMail.from_settings(app.jinja_env, settings, clock=clock)
        signer = settings.dkim_signer
        try:
            return run_tick(
                db.session(),
                open_transport=lambda: SmtpTransport(
                    opener,
                    max_per_connection=settings.smtp_max_per_connection,
                    rate_limiter=rate_limiter_for(app, settings.rate_limit_per_minute),
                    sign=signer.sign if signer else None,
                ),
                mail=mail,
                announcement_mail=announcement_mail,
                settings=settings.engine_settings,
                clock=clock,
                on_batch=on_batch,
                # Before each look at the outbox, also the first (the transport connects only when it
                # sends, so this runs with the mail server down too): the confirmations go out with it.
                take_new_work=partial(_carry_out_join_requests, settings.membership_policy),
                departures=departures_of(app),
            )
        finally:
            db.session.remove()


def with_forum_details(settings: Settings) -> Settings:
    """The forum's details as owners set them on /admin/settings, read at each tick, laid over `settings` (V6):
    mail built in this tick says what the page said when it was saved. Inside an app context; ends the read."""
    try:
        return forum_details(db.session(), settings).overlay(settings)
    finally:
        db.session.rollback()  # the read's transaction ends here: the tick's own work starts fresh


def release_own_claims_for_app(app: Flask, settings: Settings) -> int:
    """At a worker's start: rows still claimed under its worker id were claimed by an earlier run of it
    that stopped; they go back in the queue now, not after its heartbeat ages (engine/claims.py).
    Worker ids must be unique among running workers (MAILER_WORKER_ID)."""
    released = 0
    with app.app_context():
        try:
            for kind in (OutboxQueue, DeliveryQueue):
                released += release_expired_claims(
                    db.session(), kind, settings=settings.engine_settings, clock=app.extensions["mailer.clock"],
                    also=[settings.worker_id],
                )
            return released
        finally:
            db.session.remove()


def process_join_requests_for_app(app: Flask) -> None:
    """Carry out the join form posts stored since the last look (J1), without sending anything."""
    with app.app_context():
        try:
            _carry_out_join_requests(with_forum_details(settings_of(app)).membership_policy)
        finally:
            db.session.remove()


def _carry_out_join_requests(policy: MembershipPolicy) -> None:
    with transaction(db.session()):
        outcomes = process_join_requests(db.session(), policy=policy)
    for outcome in outcomes:
        log.info("join: %s", outcome.value)


def process_bounces_for_app(app: Flask, settings: Settings | None = None) -> BounceSummary:
    """Fetch the bounce mailbox if one is configured, then read and count what was stored (issue 8).

    An unreachable mailbox is logged and skipped: what the bounce port stored is still processed."""
    settings = settings or settings_of(app)
    imap = settings.imap_settings
    if imap is not None:
        try:
            poll_bounce_mailbox(imap, store_for_app(app, imap.max_bytes, "imap"))
        except Exception as exc:  # IMAP errors, timeouts, refused logins: try again next time
            log.warning("bounce mailbox: could not fetch: %s: %s", type(exc).__name__, exc)
    with app.app_context():
        try:
            return process_bounce_messages(db.session(), settings.bounce_policy, clock=app.extensions["mailer.clock"])
        finally:
            db.session.remove()
