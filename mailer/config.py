"""Configuration: built-in defaults, then instance/config.py, then FLASK_* environment (P4).

This fills app.config; mailer.settings then parses it, once, into the Settings the code reads."""

from __future__ import annotations

import os
from typing import Any

from flask import Flask

DEV_SECRET_KEY = "dev-only-not-secret"
# Who knows SECRET_KEY can forge every link and admin session; 32 random characters are out of reach.
MIN_SECRET_LENGTH = 32
# deploy/mailer.env.example's "replace-with-..." values are public (and long enough): never a key.
PLACEHOLDER_PREFIX = "replace-with-"


class Defaults:
    """Safe defaults for trying mailer out on one machine with the development mailbox."""

    SECRET_KEY = DEV_SECRET_KEY
    MAILER_ENV = "development"  # "production" turns on the safety checks below
    MAILER_BASE_URL = "http://127.0.0.1:5000"
    MAILER_FORUM_NAME = "Parent Carer Forum"
    MAILER_CONTACT_ADDRESS = "hello@forum.example"
    MAILER_PRIVACY_NOTICE_URL = ""  # empty: the built-in /privacy page
    MAILER_FOOTER_LINE = ""  # e.g. "Registered charity number 1234567"; shown under every page and email
    MAILER_MESSAGE_ID_DOMAIN = ""  # empty: the domain of MAIL_DEFAULT_SENDER
    MAILER_REPLY_TO = ""  # empty: MAILER_CONTACT_ADDRESS
    MAILER_LIST_ID = ""  # empty: "members.<message-id domain>"
    MAILER_CONFIRM_MAX_AGE_DAYS = 7
    MAILER_CONFIRMATION_INTERVAL_MINUTES = 60  # at most one confirmation mail per address per period
    MAILER_SUPPRESSION_KEY = ""  # empty: derived from SECRET_KEY; set its own value in production
    MAILER_UNCONFIRMED_RETENTION_DAYS = 30
    MAILER_CONFIRM_REMINDER_DAYS = 0  # N > 0: one reminder to confirm, N days after joining (issue 20.7)
    MAILER_OUTBOX_RETENTION_DAYS = 30
    MAILER_DELIVERY_RETENTION_DAYS = 365  # then a delivery keeps its outcome but not who it was for
    MAILER_AUDIT_RETENTION_DAYS = 730  # audit log rows (V5) older than this are deleted by the daily housekeeping
    MAILER_TICK_SECONDS = 5.0
    MAILER_BATCH_SIZE = 100
    MAILER_OUTBOX_MAX_ATTEMPTS = 8
    MAILER_RETRY_BASE_SECONDS = 30.0
    MAILER_RETRY_MAX_SECONDS = 3600.0
    MAILER_CLAIM_LEASE_SECONDS = 300.0
    MAILER_RECHECK_SECONDS = 0.2  # how often a running batch re-reads who has left (S5)
    MAILER_BOUNCE_THRESHOLD = 3  # permanent failures before an address is suppressed (S4)
    MAILER_BOUNCE_DECAY_DAYS = 60  # only permanent failures this recent count towards the threshold
    MAILER_BOUNCE_ADDRESS = ""  # e.g. "bounces@forum.example"; empty: bounces go to the From address
    MAILER_VERP = True  # with a bounce address: bounces+<signed row token>@domain; off: the fixed address
    MAILER_BOUNCE_SMTP_HOST = "127.0.0.1"  # `flask --app wsgi bounce-server` listens here
    MAILER_BOUNCE_SMTP_PORT = 0  # 0: off
    MAILER_BOUNCE_MAX_BYTES = 256 * 1024  # bigger bounce messages are refused (552), not stored: a DSN is a few KB
    MAILER_BOUNCE_MESSAGES_PER_MINUTE = 30  # per client address at the bounce port; more get 450 (try later)
    MAILER_BOUNCE_MAX_UNPROCESSED = 1000  # stored bounces waiting for the worker; past this the port answers 452
    MAILER_BOUNCE_MAX_UNPROCESSED_BYTES = 64 * 1024 * 1024  # and their total size; past this, 452 too
    MAILER_BOUNCE_RETENTION_DAYS = 60  # then a processed bounce message (it quotes the address) is deleted
    MAILER_BOUNCE_IMAP_HOST = ""  # set to poll a bounce mailbox over IMAP instead of (or as well as) the port
    MAILER_BOUNCE_IMAP_PORT = 993
    MAILER_BOUNCE_IMAP_SSL = True
    MAILER_BOUNCE_IMAP_USERNAME = ""
    MAILER_BOUNCE_IMAP_PASSWORD = ""
    MAILER_BOUNCE_IMAP_FOLDER = "INBOX"
    MAILER_HOLD_AFTER_HOURS = 6.0  # a send this late waits for an admin instead of going out
    MAILER_UNDO_SECONDS = 60  # after "Send to N members", this long to press "Stop, don't send" (V1)
    MAILER_UNSUBSCRIBE_MAILTO = ""  # optional mailto: for List-Unsubscribe
    MAILER_FEEDBACK_ID = ""  # optional sender id for Gmail's Feedback-ID header (complaint reports)
    MAILER_DKIM_KEY_FILE = ""  # set with MAILER_DKIM_SELECTOR to sign mail (E4)
    MAILER_DKIM_SELECTOR = "mail"
    MAILER_DKIM_DOMAIN = ""  # empty: the Message-ID domain
    MAILER_SMTP_CONCURRENCY = 1  # sending processes (each with its own connection) per worker; PostgreSQL only
    MAILER_RATE_LIMIT_PER_MINUTE = 0  # 0: no limit; else at most this many messages in any 60 seconds
    MAILER_SMTP_TIMEOUT = 30.0
    MAILER_SMTP_CA_FILE = ""  # a CA bundle for a relay with a private certificate; empty: the system's CAs
    MAILER_SMTP_MAX_PER_CONNECTION = 500
    MAILER_WORKER_ID = ""  # empty: host name and process id
    # Behind nginx: how many proxies set each X-Forwarded-* header (werkzeug ProxyFix); 0 ignores it.
    MAILER_PROXY_FIX_X_FOR = 0
    MAILER_PROXY_FIX_X_PROTO = 0
    MAILER_PROXY_FIX_X_HOST = 0
    MAILER_PROXY_FIX_X_PORT = 0
    MAILER_PROXY_FIX_X_PREFIX = 0
    MAILER_LOG_LEVEL = "INFO"
    MAILER_LOG_SETUP: bool | None = None  # None: key=value lines on stderr unless TESTING; False: leave logging alone
    MAILER_JOIN_RATE_LIMIT = "20 per hour"  # join form posts per IP
    MAILER_JOIN_RATE_LIMIT_PER_ADDRESS = "5 per hour"  # join form posts per email address, from any IP
    MAILER_EMBED_ORIGINS = ""  # web origins (space-separated) whose pages may show /join/embed in a frame (R2)
    MAILER_LOGIN_RATE_LIMIT_IP = "20 per 10 minutes"
    MAILER_LOGIN_RATE_LIMIT_ACCOUNT = "5 per 15 minutes"  # failed attempts for one account from one IP address
    MAILER_TEST_SEND_RATE_LIMIT = "30 per hour"  # test emails per admin (a test to five addresses counts five)
    MAILER_RESET_RATE_LIMIT_IP = "10 per hour"  # "Forgot your password?" requests from one IP address
    MAILER_RESET_RATE_LIMIT_ADDRESS = "3 per hour"  # reset requests for one address, from anywhere
    MAILER_ADMIN_IDLE_MINUTES = 480  # an admin session this long without a request must log in again
    MAILER_IMPORT_CONFIRMATIONS_PER_MINUTE = 60  # spreads an import's confirmation emails out; 0 sends at once
    MAILER_IMPORT_MAX_BYTES = 20 * 1024 * 1024  # CSV upload limit, for the import page only (J6)
    MAILER_IMPORT_DIR = ""  # where uploads wait between preview and apply; empty: instance/imports
    MAILER_DOCUMENT_MAX_BYTES = 10 * 1024 * 1024  # letters uploaded with announcements, that page only (issue 9)
    MAILER_DOCUMENT_DIR = ""  # where hosted documents are kept; empty: instance/documents
    # An operator's email/layout.html overrides the built-in; empty: instance/email_templates
    MAILER_EMAIL_TEMPLATE_DIR = ""

    MAIL_SERVER = "127.0.0.1"
    MAIL_PORT = 1025  # the development mailbox
    MAIL_USE_TLS = False
    MAIL_USE_SSL = False
    MAIL_USERNAME = None
    MAIL_PASSWORD = None
    MAIL_DEFAULT_SENDER = "Parent Carer Forum <noreply@forum.example>"
    MAIL_SUPPRESS_SEND = False  # Flask-Mail would otherwise turn sending off under TESTING

    SQLALCHEMY_ENGINE_OPTIONS: dict[str, Any] = {"pool_pre_ping": True}
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = False
    WTF_CSRF_TIME_LIMIT = None  # a parent may leave the form open for hours
    # Over https Flask-WTF would also demand a same-host Referer, but our pages send
    # Referrer-Policy: no-referrer, so browsers send none and every form would fail.
    # The CSRF token and SameSite=Lax cookies are the protection.
    WTF_CSRF_SSL_STRICT = False
    MAX_CONTENT_LENGTH = 1 * 1024 * 1024
    # Log-in and join limits: "database://" keeps the counters in the app's own database, shared by
    # every process and kept over restarts; "redis://host:6379" works too; "memory://" is per process.
    RATELIMIT_STORAGE_URI = "database://"
    RATELIMIT_HEADERS_ENABLED = False


class ConfigurationError(RuntimeError):
    """The service must not start with this configuration."""


def load_config(app: Flask, test_config: dict[str, Any] | None) -> None:
    """Fill app.config in the documented order and refuse unsafe production settings."""
    app.config.from_object(Defaults)
    app.config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{os.path.join(app.instance_path, 'mailer.db')}"
    if test_config is None:
        app.config.from_pyfile("config.py", silent=True)
        app.config.from_prefixed_env()
        if os.environ.get("MAILER_ENV"):
            app.config["MAILER_ENV"] = os.environ["MAILER_ENV"]
    else:
        app.config.from_mapping(test_config)
    if is_production(app.config):
        app.config["SESSION_COOKIE_SECURE"] = True
        for key in ("SECRET_KEY", "MAILER_SUPPRESSION_KEY"):
            problem = weak_key(key, app.config.get(key))
            if problem:
                raise ConfigurationError(
                    f"MAILER_ENV is production but {key} is {problem}: set FLASK_{key} to at least "
                    f"{MIN_SECRET_LENGTH} random characters "
                    "(python3 -c 'import secrets; print(secrets.token_urlsafe(48))')."
                )


def weak_key(name: str, value: Any) -> str | None:
    """Why this key must not be used in production, or None. SECRET_KEY must be set; the suppression key
    may be empty (derived from SECRET_KEY), but when set it must be as strong."""
    text = "" if value is None else str(value)
    if name == "SECRET_KEY" and text == DEV_SECRET_KEY:
        return "the development default"
    if not text:
        return "empty" if name == "SECRET_KEY" else None
    if text.startswith(PLACEHOLDER_PREFIX):
        return "the placeholder from mailer.env.example"
    if len(text) < MIN_SECRET_LENGTH:
        return f"only {len(text)} characters"
    return None


def is_production(config: dict[str, Any]) -> bool:
    return str(config.get("MAILER_ENV", "")).lower() == "production"

