"""One frozen, typed Settings, built and checked once from the layered configuration (P4).

mailer.config fills app.config (defaults, instance/config.py, FLASK_* environment); create_app then
builds Settings from it, here, and keeps it at app.extensions["mailer.settings"]. Every value is
parsed once: a port that is not a number, a negative interval, a flag that is neither on nor off,
an unreadable DKIM key or a rate limit Flask-Limiter cannot read stops the start with one line
naming the key. Nothing else in mailer reads MAILER_* or MAIL_* keys: domain and engine code get
Settings, or the policy they need from one of its properties, as an argument.

Settings pickles, so a worker hands it to the sending processes it starts."""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import re
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from email.utils import parseaddr
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from mailer.config import ConfigurationError
from mailer.mail.verp import verp_key
from mailer.members.addresses import suppression_key

if TYPE_CHECKING:
    from flask import Flask

    from mailer.bounces.imap import ImapSettings
    from mailer.bounces.records import BouncePolicy
    from mailer.engine.settings import EngineSettings
    from mailer.mail.dkim import DkimSigner
    from mailer.mail.emails import MailSettings
    from mailer.members.csv.apply import ImportSettings
    from mailer.members.membership import MembershipPolicy
    from mailer.worker.housekeeping import Retention

EXTENSION_KEY = "mailer.settings"
# Claims are named "<worker id>:<12 hex characters>" in columns of 100 characters.
WORKER_ID_MAX = 100 - 13
_FEEDBACK_ID = re.compile(r"[A-Za-z0-9._-]{0,40}")  # the last field of Feedback-ID, after the colons
MIN_HEARTBEAT_STALE_SECONDS = 2.0  # see Settings.heartbeat_stale_after
_SHOWN_MAX = 40  # a bad value is quoted in the error up to this many characters

Parser = Callable[[str, Any], Any]


# --- parsing one value --------------------------------------------------------------------------
# Values arrive typed from defaults and instance/config.py, and from FLASK_* variables either typed
# (Flask reads them as JSON: 5, 0.5, true) or as plain strings ("abc", "off", "20 per hour").


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN_MAX else text[: _SHOWN_MAX - 3] + "..."


def _refuse(key: str, wanted: str, value: Any, *, show: bool = True) -> ConfigurationError:
    got = f", not {_shown(value)}" if show else ""
    return ConfigurationError(f"{key} must be {wanted}{got}: fix FLASK_{key} or instance/config.py")


def text(*, secret: bool = False) -> Parser:
    """Any text; numbers from the environment (FLASK_MAIL_PASSWORD=123456 arrives as an int) become text."""

    def parse(key: str, value: Any) -> str:
        if value is None:
            return ""
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise _refuse(key, "text", value, show=not secret)

    return parse


def optional_text(*, secret: bool = False) -> Parser:
    """Text, or None when unset (Flask-Mail's MAIL_USERNAME and MAIL_PASSWORD)."""
    as_text = text(secret=secret)

    def parse(key: str, value: Any) -> str | None:
        return None if value is None or value == "" else as_text(key, value)

    return parse


def whole(*, minimum: int = 0, maximum: int | None = None) -> Parser:
    """A whole number within bounds; "5" and 5.0 are 5, "5.5", "abc" and true are refused."""
    bounds = f"at least {minimum}" if maximum is None else f"from {minimum} to {maximum}"

    def parse(key: str, value: Any) -> int:
        number: int | None = None
        if isinstance(value, bool):
            number = None
        elif isinstance(value, int):
            number = value
        elif isinstance(value, float) and value.is_integer():
            number = int(value)
        elif isinstance(value, str):
            try:
                number = int(value.strip())
            except ValueError:
                number = None
        if number is None or number < minimum or (maximum is not None and number > maximum):
            raise _refuse(key, f"a whole number {bounds}", value)
        return number

    return parse


def number(*, minimum: float = 0.0, above: bool = False) -> Parser:
    """A finite number; `above` excludes the minimum itself (a tick of 0 seconds is no interval)."""
    bounds = f"more than {minimum:g}" if above else f"at least {minimum:g}"

    def parse(key: str, value: Any) -> float:
        result: float | None = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            result = float(value)
        elif isinstance(value, str):
            try:
                result = float(value.strip())
            except ValueError:
                result = None
        if result is None or not math.isfinite(result) or result < minimum or (above and result == minimum):
            raise _refuse(key, f"a number {bounds}", value)
        return result

    return parse


_ON = {"1", "true", "yes", "on"}
_OFF = {"0", "false", "no", "off", ""}


def flag() -> Parser:
    """On or off: true/false, 1/0, yes/no, on/off in any case. "maybe" is refused, not read as on."""

    def parse(key: str, value: Any) -> bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in _ON | _OFF:
            return value.strip().lower() in _ON
        raise _refuse(key, "true or false", value)

    return parse


def optional_flag() -> Parser:
    """On, off, or unset (None: decide from the situation)."""
    as_flag = flag()

    def parse(key: str, value: Any) -> bool | None:
        if value is None or (isinstance(value, str) and value.strip().lower() in ("none", "null")):
            return None
        on: bool = as_flag(key, value)
        return on

    return parse


def rate_limit() -> Parser:
    """A limit as Flask-Limiter reads it: "20 per hour", "5/minute", several joined with ";"."""
    from limits import parse_many

    def parse(key: str, value: Any) -> str:
        if isinstance(value, str) and value.strip():
            try:
                if parse_many(value):
                    return value
            except ValueError:
                pass
        raise _refuse(key, 'a rate limit like "20 per hour"', value)

    return parse


def log_level() -> Parser:
    levels = logging.getLevelNamesMapping()
    names = sorted((name for name in levels if name not in ("NOTSET", "WARN", "FATAL")), key=levels.__getitem__)

    def parse(key: str, value: Any) -> str:
        if isinstance(value, str) and value.strip().upper() in names:
            return value.strip().upper()
        raise _refuse(key, f"one of {', '.join(names)}", value)

    return parse


def sender() -> Parser:
    """MAIL_DEFAULT_SENDER: 'Name <address>', or a (name, address) pair as Flask-Mail allows."""

    def parse(key: str, value: Any) -> str | tuple[str, str]:
        if isinstance(value, str):
            return value
        if isinstance(value, (tuple, list)) and len(value) == 2 and all(isinstance(part, str) for part in value):
            return (value[0], value[1])
        raise _refuse(key, "text like 'Forum name <noreply@your-domain>'", value)

    return parse


_ORIGIN_HOST = re.compile(r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


def origins() -> Parser:
    """Web origins separated by spaces, like "https://www.forum.example https://forum.example:8443": a scheme
    (http or https), a host and an optional port, nothing else (no path, query, wildcard or quote), so each can
    go into a Content-Security-Policy as it is. Empty: none."""
    wanted = 'web origins separated by spaces, like "https://www.forum.example"'

    def parse(key: str, value: Any) -> tuple[str, ...]:
        if value is None:
            return ()
        if not isinstance(value, str):
            raise _refuse(key, wanted, value)
        found: list[str] = []
        for item in value.split():
            parts = urlsplit(item.lower().removesuffix("/")) if item.isascii() else None
            try:
                port = parts.port if parts else None
            except ValueError:
                parts = None
            if (
                parts is None
                or parts.scheme not in ("http", "https")
                or not _ORIGIN_HOST.fullmatch(parts.hostname or "")
                or parts.netloc != (parts.hostname or "") + (f":{port}" if port is not None else "")
                or parts.path
                or parts.query
                or parts.fragment
                or "?" in item
                or "#" in item
                or port == 0
            ):
                raise _refuse(key, wanted, item)
            found.append(f"{parts.scheme}://{parts.netloc}")
        return tuple(dict.fromkeys(found))

    return parse


def setting(key: str, parse: Parser, *, secret: bool = False) -> Any:
    """A field read from configuration key `key`; secrets stay out of repr (and so out of logs)."""
    return field(metadata={"key": key, "parse": parse}, repr=not secret)


# --- the settings -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Settings:
    """Every MAILER_* and MAIL_* value, typed; derived values are properties, each defined once here.

    Fields named `configured_*` hold a key as given where a property works out what is used."""

    instance_path: str
    dkim_private_key: bytes = field(repr=False)  # read from MAILER_DKIM_KEY_FILE at start-up; b"" when off

    database_uri: str = setting("SQLALCHEMY_DATABASE_URI", text(secret=True), secret=True)  # may hold a password
    secret_key: str = setting("SECRET_KEY", text(secret=True), secret=True)
    env: str = setting("MAILER_ENV", text())
    base_url: str = setting("MAILER_BASE_URL", text())
    forum_name: str = setting("MAILER_FORUM_NAME", text())
    contact_address: str = setting("MAILER_CONTACT_ADDRESS", text())
    privacy_notice_url: str = setting("MAILER_PRIVACY_NOTICE_URL", text())
    footer_line: str = setting("MAILER_FOOTER_LINE", text())  # owners may change it on /admin/settings (V6)
    configured_message_id_domain: str = setting("MAILER_MESSAGE_ID_DOMAIN", text())
    configured_reply_to: str = setting("MAILER_REPLY_TO", text())
    configured_list_id: str = setting("MAILER_LIST_ID", text())
    confirm_max_age_days: int = setting("MAILER_CONFIRM_MAX_AGE_DAYS", whole(minimum=1))
    confirmation_interval_minutes: float = setting("MAILER_CONFIRMATION_INTERVAL_MINUTES", number())
    configured_suppression_key: str = setting("MAILER_SUPPRESSION_KEY", text(secret=True), secret=True)
    unconfirmed_retention_days: float = setting("MAILER_UNCONFIRMED_RETENTION_DAYS", number())
    confirm_reminder_days: int = setting("MAILER_CONFIRM_REMINDER_DAYS", whole(minimum=0))  # 0: no reminder
    outbox_retention_days: float = setting("MAILER_OUTBOX_RETENTION_DAYS", number())
    delivery_retention_days: float = setting("MAILER_DELIVERY_RETENTION_DAYS", number())
    audit_retention_days: float = setting("MAILER_AUDIT_RETENTION_DAYS", number(minimum=1))
    tick_seconds: float = setting("MAILER_TICK_SECONDS", number(above=True))
    batch_size: int = setting("MAILER_BATCH_SIZE", whole(minimum=1))
    outbox_max_attempts: int = setting("MAILER_OUTBOX_MAX_ATTEMPTS", whole(minimum=1))
    retry_base_seconds: float = setting("MAILER_RETRY_BASE_SECONDS", number())
    retry_max_seconds: float = setting("MAILER_RETRY_MAX_SECONDS", number())
    claim_lease_seconds: float = setting("MAILER_CLAIM_LEASE_SECONDS", number(above=True))
    recheck_seconds: float = setting("MAILER_RECHECK_SECONDS", number(above=True))
    bounce_threshold: int = setting("MAILER_BOUNCE_THRESHOLD", whole(minimum=1))
    bounce_decay_days: float = setting("MAILER_BOUNCE_DECAY_DAYS", number(above=True))
    bounce_address: str = setting("MAILER_BOUNCE_ADDRESS", text())
    verp: bool = setting("MAILER_VERP", flag())
    bounce_smtp_host: str = setting("MAILER_BOUNCE_SMTP_HOST", text())
    bounce_smtp_port: int = setting("MAILER_BOUNCE_SMTP_PORT", whole(maximum=65535))  # 0: off
    bounce_max_bytes: int = setting("MAILER_BOUNCE_MAX_BYTES", whole(minimum=1))
    bounce_messages_per_minute: int = setting("MAILER_BOUNCE_MESSAGES_PER_MINUTE", whole())
    bounce_max_unprocessed: int = setting("MAILER_BOUNCE_MAX_UNPROCESSED", whole())
    bounce_max_unprocessed_bytes: int = setting("MAILER_BOUNCE_MAX_UNPROCESSED_BYTES", whole())
    bounce_retention_days: float = setting("MAILER_BOUNCE_RETENTION_DAYS", number())
    bounce_imap_host: str = setting("MAILER_BOUNCE_IMAP_HOST", text())
    bounce_imap_port: int = setting("MAILER_BOUNCE_IMAP_PORT", whole(minimum=1, maximum=65535))
    bounce_imap_ssl: bool = setting("MAILER_BOUNCE_IMAP_SSL", flag())
    bounce_imap_username: str = setting("MAILER_BOUNCE_IMAP_USERNAME", text())
    bounce_imap_password: str = setting("MAILER_BOUNCE_IMAP_PASSWORD", text(secret=True), secret=True)
    bounce_imap_folder: str = setting("MAILER_BOUNCE_IMAP_FOLDER", text())
    hold_after_hours: float = setting("MAILER_HOLD_AFTER_HOURS", number())
    undo_seconds: int = setting("MAILER_UNDO_SECONDS", whole(maximum=3600))  # V1: the undo window
    unsubscribe_mailto: str = setting("MAILER_UNSUBSCRIBE_MAILTO", text())
    feedback_id: str = setting("MAILER_FEEDBACK_ID", text())  # Gmail's sender id; empty: no Feedback-ID
    dkim_key_file: str = setting("MAILER_DKIM_KEY_FILE", text())
    dkim_selector: str = setting("MAILER_DKIM_SELECTOR", text())
    configured_dkim_domain: str = setting("MAILER_DKIM_DOMAIN", text())
    smtp_concurrency: int = setting("MAILER_SMTP_CONCURRENCY", whole(minimum=1))
    rate_limit_per_minute: int = setting("MAILER_RATE_LIMIT_PER_MINUTE", whole())  # 0: no limit
    smtp_timeout: float = setting("MAILER_SMTP_TIMEOUT", number(above=True))
    smtp_ca_file: str = setting("MAILER_SMTP_CA_FILE", text())
    smtp_max_per_connection: int = setting("MAILER_SMTP_MAX_PER_CONNECTION", whole(minimum=1))
    configured_worker_id: str = setting("MAILER_WORKER_ID", text())
    proxy_fix_x_for: int = setting("MAILER_PROXY_FIX_X_FOR", whole())
    proxy_fix_x_proto: int = setting("MAILER_PROXY_FIX_X_PROTO", whole())
    proxy_fix_x_host: int = setting("MAILER_PROXY_FIX_X_HOST", whole())
    proxy_fix_x_port: int = setting("MAILER_PROXY_FIX_X_PORT", whole())
    proxy_fix_x_prefix: int = setting("MAILER_PROXY_FIX_X_PREFIX", whole())
    log_level: str = setting("MAILER_LOG_LEVEL", log_level())
    log_setup: bool | None = setting("MAILER_LOG_SETUP", optional_flag())
    join_rate_limit: str = setting("MAILER_JOIN_RATE_LIMIT", rate_limit())
    join_rate_limit_per_address: str = setting("MAILER_JOIN_RATE_LIMIT_PER_ADDRESS", rate_limit())
    embed_origins: tuple[str, ...] = setting("MAILER_EMBED_ORIGINS", origins())  # may frame /join/embed (R2)
    login_rate_limit_ip: str = setting("MAILER_LOGIN_RATE_LIMIT_IP", rate_limit())
    login_rate_limit_account: str = setting("MAILER_LOGIN_RATE_LIMIT_ACCOUNT", rate_limit())
    test_send_rate_limit: str = setting("MAILER_TEST_SEND_RATE_LIMIT", rate_limit())
    reset_rate_limit_ip: str = setting("MAILER_RESET_RATE_LIMIT_IP", rate_limit())
    reset_rate_limit_address: str = setting("MAILER_RESET_RATE_LIMIT_ADDRESS", rate_limit())
    admin_idle_minutes: float = setting("MAILER_ADMIN_IDLE_MINUTES", number(above=True))
    import_confirmations_per_minute: float = setting("MAILER_IMPORT_CONFIRMATIONS_PER_MINUTE", number())
    import_max_bytes: int = setting("MAILER_IMPORT_MAX_BYTES", whole(minimum=1))
    configured_import_dir: str = setting("MAILER_IMPORT_DIR", text())
    document_max_bytes: int = setting("MAILER_DOCUMENT_MAX_BYTES", whole(minimum=1))
    configured_document_dir: str = setting("MAILER_DOCUMENT_DIR", text())
    configured_email_template_dir: str = setting("MAILER_EMAIL_TEMPLATE_DIR", text())
    mail_server: str = setting("MAIL_SERVER", text())
    mail_port: int = setting("MAIL_PORT", whole(minimum=1, maximum=65535))
    mail_use_tls: bool = setting("MAIL_USE_TLS", flag())
    mail_use_ssl: bool = setting("MAIL_USE_SSL", flag())
    mail_username: str | None = setting("MAIL_USERNAME", optional_text())
    mail_password: str | None = setting("MAIL_PASSWORD", optional_text(secret=True), secret=True)
    mail_default_sender: str | tuple[str, str] = setting("MAIL_DEFAULT_SENDER", sender())

    @classmethod
    def from_config(cls, config: Mapping[str, Any], *, instance_path: str) -> Settings:
        """Parse every key once; raises ConfigurationError naming the first key that is wrong."""
        values: dict[str, Any] = {}
        for item in dataclasses.fields(cls):
            if "key" in item.metadata:
                key = item.metadata["key"]
                if key not in config:
                    raise ConfigurationError(f"{key} is missing from the configuration")
                values[item.name] = item.metadata["parse"](key, config[key])
        values["dkim_private_key"] = _read_dkim_key(values["dkim_key_file"])
        made = cls(instance_path=str(instance_path), **values)
        for key, value in (("MAILER_DKIM_SELECTOR", made.dkim_selector), ("MAILER_DKIM_DOMAIN", made.dkim_domain)):
            if made.dkim_private_key and not (value.isascii() and value.strip()):
                raise _refuse(key, "plain ASCII (a DNS name)", value)
        if not _FEEDBACK_ID.fullmatch(made.feedback_id):
            raise _refuse("MAILER_FEEDBACK_ID", "letters, digits, '.', '_' or '-' (at most 40)", made.feedback_id)
        return made

    # --- who we are ------------------------------------------------------------------------------

    @property
    def is_production(self) -> bool:
        return self.env.lower() == "production"

    @property
    def sender_parts(self) -> tuple[str, str]:
        """(display name, address) from MAIL_DEFAULT_SENDER; the forum's name when it gives none."""
        if isinstance(self.mail_default_sender, tuple):
            name, address = self.mail_default_sender
        else:
            name, address = parseaddr(self.mail_default_sender)
        return name or self.forum_name, address

    @property
    def from_address(self) -> str:
        return self.sender_parts[1]

    @property
    def envelope_from(self) -> str:
        """The Return-Path when there is no bounce address: the From address."""
        return self.from_address

    @property
    def reply_to(self) -> str:
        return self.configured_reply_to or self.contact_address

    @property
    def message_id_domain(self) -> str:
        """For Message-IDs: MAILER_MESSAGE_ID_DOMAIN, else the sender's domain, else the base URL's host."""
        if self.configured_message_id_domain:
            return self.configured_message_id_domain
        address = self.from_address
        if "@" in address:
            return address.rsplit("@", 1)[1]
        return urlsplit(self.base_url).hostname or "localhost"

    @property
    def list_id(self) -> str:
        """The List-Id identifier (without the forum name in front): MAILER_LIST_ID or members.<domain>."""
        return self.configured_list_id or f"members.{self.message_id_domain}"

    @property
    def worker_id(self) -> str:
        """Names this process's claims and heartbeat: MAILER_WORKER_ID, else host name and process id."""
        return (self.configured_worker_id or f"{socket.gethostname()}:{os.getpid()}")[:WORKER_ID_MAX]

    @property
    def heartbeat_stale_after(self) -> timedelta:
        """When a worker's heartbeat (written twice a second by a thread of its own) is this old, the worker
        has stopped and its claims go back in the queue: three ticks, and never under two seconds, so a busy
        database or a small clock skew between hosts does not make a live worker look stopped."""
        return timedelta(seconds=max(3 * self.tick_seconds, MIN_HEARTBEAT_STALE_SECONDS))

    # --- keys ----------------------------------------------------------------------------------------

    @property
    def suppression_key(self) -> bytes:
        """Keys the hashes of suppressed addresses (C3): its own value, else derived from SECRET_KEY."""
        return suppression_key(self.configured_suppression_key, self.secret_key)

    @property
    def verp_key(self) -> bytes:
        """Signs VERP bounce addresses; empty when MAILER_VERP is off (one fixed bounce address)."""
        return verp_key(self.secret_key) if self.verp else b""

    # --- places --------------------------------------------------------------------------------------

    @property
    def import_dir(self) -> Path:
        """Where CSV uploads wait between preview and apply: MAILER_IMPORT_DIR or instance/imports."""
        return Path(self.configured_import_dir or Path(self.instance_path) / "imports")

    @property
    def document_dir(self) -> Path:
        """Where hosted documents are kept: MAILER_DOCUMENT_DIR or instance/documents."""
        return Path(self.configured_document_dir or Path(self.instance_path) / "documents")

    @property
    def email_template_dir(self) -> Path:
        """An operator's email/layout.html lives here: MAILER_EMAIL_TEMPLATE_DIR or instance/email_templates."""
        return Path(self.configured_email_template_dir or Path(self.instance_path) / "email_templates")

    @property
    def dkim_domain(self) -> str:
        return self.configured_dkim_domain or self.message_id_domain

    # --- times ---------------------------------------------------------------------------------------

    @property
    def confirm_max_age(self) -> timedelta:
        return timedelta(days=self.confirm_max_age_days)

    @property
    def confirm_reminder(self) -> timedelta | None:
        """How long after joining an unconfirmed signup gets its one reminder (issue 20.7); None: off."""
        return timedelta(days=self.confirm_reminder_days) if self.confirm_reminder_days else None

    @property
    def undo_window(self) -> timedelta:
        return timedelta(seconds=self.undo_seconds)

    @property
    def admin_idle(self) -> timedelta:
        return timedelta(minutes=self.admin_idle_minutes)

    @property
    def bounce_retention(self) -> timedelta:
        return timedelta(days=self.bounce_retention_days)

    @property
    def proxy_fix_counts(self) -> dict[str, int]:
        """werkzeug ProxyFix's arguments: how many proxies set each X-Forwarded-* header."""
        return {"x_for": self.proxy_fix_x_for, "x_proto": self.proxy_fix_x_proto, "x_host": self.proxy_fix_x_host,
                "x_port": self.proxy_fix_x_port, "x_prefix": self.proxy_fix_x_prefix}

    # --- the policy objects domain and engine code take ----------------------------------------------

    @property
    def mail_settings(self) -> MailSettings:
        from mailer.mail.emails import MailSettings, header_safe

        from_name, from_address = self.sender_parts
        return MailSettings(
            forum_name=self.forum_name,
            from_name=from_name,
            from_address=from_address,
            reply_to=self.reply_to,
            contact_address=self.contact_address,
            footer_line=self.footer_line,
            message_id_domain=self.message_id_domain,
            list_id=f"{header_safe(self.forum_name)} <{self.list_id}>",
            base_url=self.base_url.rstrip("/"),
        )

    @property
    def membership_policy(self) -> MembershipPolicy:
        from mailer.members.membership import MembershipPolicy

        return MembershipPolicy(
            suppression_key=self.suppression_key,
            forum_name=self.forum_name,
            confirmation_interval=timedelta(minutes=self.confirmation_interval_minutes),
        )

    @property
    def bounce_policy(self) -> BouncePolicy:
        """The S4 rule and what reading VERP tokens needs: for the engine, the worker, the bounce port and pages."""
        from mailer.bounces.records import BouncePolicy

        return BouncePolicy(
            threshold=self.bounce_threshold,
            decay=timedelta(days=self.bounce_decay_days),
            suppression_key=self.suppression_key,
            bounce_address=self.bounce_address,
            verp_key=self.verp_key,
            max_bytes=self.bounce_max_bytes,
        )

    @property
    def engine_settings(self) -> EngineSettings:
        from mailer.engine.settings import EngineSettings

        return EngineSettings(
            worker_id=self.worker_id,
            envelope_from=self.envelope_from,
            batch_size=self.batch_size,
            max_attempts=self.outbox_max_attempts,
            retry_base=timedelta(seconds=self.retry_base_seconds),
            retry_max=timedelta(seconds=self.retry_max_seconds),
            lease=timedelta(seconds=self.claim_lease_seconds),
            stale_after=self.heartbeat_stale_after,
            recheck_seconds=self.recheck_seconds,
            hold_after=timedelta(hours=self.hold_after_hours),
            bounce_rules=self.bounce_policy,
        )

    @property
    def import_settings(self) -> ImportSettings:
        from mailer.members.csv.apply import ImportSettings

        return ImportSettings(
            suppression_key=self.suppression_key, confirmations_per_minute=self.import_confirmations_per_minute
        )

    @property
    def retention(self) -> Retention:
        from mailer.worker.housekeeping import Retention

        return Retention(
            unconfirmed=timedelta(days=self.unconfirmed_retention_days),
            outbox=timedelta(days=self.outbox_retention_days),
            deliveries=timedelta(days=self.delivery_retention_days),
            audit=timedelta(days=self.audit_retention_days),
        )

    @property
    def imap_settings(self) -> ImapSettings | None:
        """None when no bounce mailbox is configured (the bounce port, or nothing, is used)."""
        from mailer.bounces.imap import ImapSettings

        if not self.bounce_imap_host:
            return None
        return ImapSettings(
            host=self.bounce_imap_host,
            port=self.bounce_imap_port,
            username=self.bounce_imap_username,
            password=self.bounce_imap_password,
            folder=self.bounce_imap_folder,
            use_ssl=self.bounce_imap_ssl,
            timeout=self.smtp_timeout,
            max_bytes=self.bounce_max_bytes,
        )

    @property
    def dkim_signer(self) -> DkimSigner | None:
        """None when DKIM is off (E4)."""
        from mailer.mail.dkim import DkimSigner

        if not self.dkim_private_key:
            return None
        return DkimSigner(
            selector=self.dkim_selector.encode("ascii"),
            domain=self.dkim_domain.encode("ascii"),
            private_key=self.dkim_private_key,
        )

    # --- processes -----------------------------------------------------------------------------------

    def sending_processes(self) -> list[Settings]:
        """MAILER_SMTP_CONCURRENCY processes' own settings, this process's first: each sends alone
        (concurrency 1), under its own worker id (<id>/2, <id>/3, ...), with a share of the rate
        limit so that together they stay within it."""
        count = self.smtp_concurrency
        share = max(1, self.rate_limit_per_minute // count) if self.rate_limit_per_minute else 0
        base = self.worker_id
        processes = [
            dataclasses.replace(self, smtp_concurrency=1, rate_limit_per_minute=share, configured_worker_id=base)
        ]
        for number_ in range(2, count + 1):
            suffix = f"/{number_}"
            worker_id = base[: WORKER_ID_MAX - len(suffix)] + suffix
            processes.append(dataclasses.replace(processes[0], configured_worker_id=worker_id))
        return processes

    def extension_config(self) -> dict[str, Any]:
        """The keys Flask and its extensions read themselves, as parsed here, so they see what we see
        (FLASK_MAIL_USE_TLS=off is off for Flask-Mail too) and a sending process started with these
        Settings talks to the same database and relay."""
        return {
            "SECRET_KEY": self.secret_key,
            "SQLALCHEMY_DATABASE_URI": self.database_uri,
            "MAIL_SERVER": self.mail_server,
            "MAIL_PORT": self.mail_port,
            "MAIL_USE_TLS": self.mail_use_tls,
            "MAIL_USE_SSL": self.mail_use_ssl,
            "MAIL_USERNAME": self.mail_username,
            "MAIL_PASSWORD": self.mail_password,
            "MAIL_DEFAULT_SENDER": self.mail_default_sender,
        }


def _read_dkim_key(key_file: str) -> bytes:
    """The PEM key, read and parsed at start-up: a key that cannot be used would fail every tick (E4)."""
    if not key_file:
        return b""
    import dkim.crypto

    try:
        data = Path(key_file).read_bytes()
    except OSError as exc:
        raise ConfigurationError(
            f"MAILER_DKIM_KEY_FILE {key_file} cannot be read ({exc.strerror or type(exc).__name__}): "
            "fix FLASK_MAILER_DKIM_KEY_FILE or the file's permissions"
        ) from None
    try:
        dkim.crypto.parse_pem_private_key(data)
    except (dkim.crypto.UnparsableKeyError, ValueError, IndexError):
        raise ConfigurationError(
            f"MAILER_DKIM_KEY_FILE {key_file} is not a PEM RSA private key: "
            "make one with `openssl genrsa -out dkim.key 2048`"
        ) from None
    return data


def settings_of(app: Flask) -> Settings:
    """The app's Settings, built by create_app (for the worker, the CLI and the bounce server)."""
    settings: Settings = app.extensions[EXTENSION_KEY]
    return settings
