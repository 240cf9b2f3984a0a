"""Assemble the engine's parts from an app's configuration and run one tick.

The worker, `send-due` and tests all come through here, so they send the same way."""

from __future__ import annotations

import logging
import smtplib
import time
from collections.abc import Callable
from functools import partial

from flask import Flask

from .announcement_mail import AnnouncementMail
from .bounce_imap import ImapSettings, poll_bounce_mailbox
from .bounces import BouncePolicy, BounceSummary, process_bounce_messages
from .dkim_signing import DkimSigner
from .emails import MailSettings
from .engine.settings import EngineSettings
from .engine.rate_limit import RateLimiter
from .engine.tick import TickSummary, run_tick
from .engine.transport import SmtpTransport, flask_mail_opener
from .extensions import db
from .membership import MembershipPolicy, process_join_requests
from .transaction import transaction
from .transactional import TransactionalMail

log = logging.getLogger(__name__)


def rate_limiter_for(app: Flask) -> RateLimiter | None:
    """The worker's rate limit lives as long as the app, so its window spans ticks."""
    per_minute = int(app.config["MAILER_RATE_LIMIT_PER_MINUTE"] or 0)
    if per_minute <= 0:
        return None
    limiter = app.extensions.get("mailer.rate_limiter")
    if limiter is None or limiter.per_minute != per_minute:
        sleep = app.extensions.get("mailer.sleep", time.sleep)
        limiter = RateLimiter(per_minute, app.extensions["mailer.clock"], sleep)
        app.extensions["mailer.rate_limiter"] = limiter
    return limiter


def smtp_opener_for(app: Flask, timeout: float | None = None) -> Callable[[], smtplib.SMTP]:
    """Connections as the worker opens them: Flask-Mail's MAIL_* settings, our timeout and CA file."""
    config = app.config
    return flask_mail_opener(
        app.extensions["mail"],
        float(config["MAILER_SMTP_TIMEOUT"]) if timeout is None else timeout,
        ca_file=config.get("MAILER_SMTP_CA_FILE") or None,
    )


def run_tick_for_app(app: Flask, *, on_batch: Callable[[TickSummary], None] | None = None) -> TickSummary:
    """One pass over due work inside its own app context (jobs get no ORM objects)."""
    with app.app_context():
        config = app.config
        clock = app.extensions["mailer.clock"]
        settings = MailSettings.from_config(config)
        engine_settings = EngineSettings.from_config(config, envelope_from=settings.from_address)
        opener = smtp_opener_for(app)
        mail = TransactionalMail.from_config(app.jinja_env, config, clock=clock)
        announcement_mail = AnnouncementMail.from_config(app.jinja_env, config, clock=clock)
        signer = DkimSigner.from_config(config, settings.message_id_domain)
        try:
            return run_tick(
                db.session,
                open_transport=lambda: SmtpTransport(
                    opener,
                    max_per_connection=int(config["MAILER_SMTP_MAX_PER_CONNECTION"]),
                    rate_limiter=rate_limiter_for(app),
                    sign=signer.sign if signer else None,
                ),
                mail=mail,
                announcement_mail=announcement_mail,
                settings=engine_settings,
                clock=clock,
                on_batch=on_batch,
                # Before each look at the outbox, also the first (the transport connects only when it
                # sends, so this runs with the mail server down too): the confirmations go out with it.
                take_new_work=partial(_carry_out_join_requests, MembershipPolicy.from_config(config)),
            )
        finally:
            db.session.remove()


def process_join_requests_for_app(app: Flask) -> None:
    """Carry out the join form posts stored since the last look (J1), without sending anything."""
    with app.app_context():
        try:
            _carry_out_join_requests(MembershipPolicy.from_config(app.config))
        finally:
            db.session.remove()


def _carry_out_join_requests(policy: MembershipPolicy) -> None:
    with transaction(db.session):
        outcomes = process_join_requests(db.session, policy=policy)
    for outcome in outcomes:
        log.info("join: %s", outcome.value)


def bounce_policy_for(app: Flask) -> BouncePolicy:
    settings = MailSettings.from_config(app.config)
    engine_settings = EngineSettings.from_config(app.config, envelope_from=settings.from_address)
    return engine_settings.bounce_policy(max_bytes=int(app.config["MAILER_BOUNCE_MAX_BYTES"]))


def process_bounces_for_app(app: Flask) -> BounceSummary:
    """Fetch the bounce mailbox if one is configured, then read and count what was stored (issue 8).

    An unreachable mailbox is logged and skipped: what the bounce port stored is still processed."""
    imap = ImapSettings.from_config(app.config)
    if imap is not None:
        try:
            poll_bounce_mailbox(app, imap)
        except Exception as exc:  # IMAP errors, timeouts, refused logins: try again next time
            log.warning("bounce mailbox: could not fetch: %s: %s", type(exc).__name__, exc)
    with app.app_context():
        try:
            return process_bounce_messages(db.session, bounce_policy_for(app), clock=app.extensions["mailer.clock"])
        finally:
            db.session.remove()
