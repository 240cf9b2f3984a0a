"""Is this configuration fit to run for real? The checks behind `flask --app wsgi check`.

Each check returns Findings; the command only prints them. ERROR means mail would not go out
(or would go out unsafely): the command exits non-zero. WARNING works but should be fixed."""

from __future__ import annotations

import enum
import ipaddress
import logging
import os
import smtplib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from mailer.config import DEV_SECRET_KEY, MIN_SECRET_LENGTH, weak_key
from mailer.logs.redact import redact
from mailer.settings import Settings


class Level(enum.StrEnum):
    OK = "ok"
    WARNING = "warning"
    ERROR = "error"


@dataclass(frozen=True)
class Finding:
    level: Level
    message: str

    def line(self) -> str:
        return f"{self.level.value.upper():<7} {self.message}"


def ok(message: str) -> Finding:
    return Finding(Level.OK, message)


def warning(message: str) -> Finding:
    return Finding(Level.WARNING, message)


def error(message: str) -> Finding:
    return Finding(Level.ERROR, message)


def blocks_sending(findings: list[Finding]) -> bool:
    return any(f.level is Level.ERROR for f in findings)


# --- settings that need nothing but the configuration --------------------------


def check_secret_key(settings: Settings) -> list[Finding]:
    """Who knows SECRET_KEY can forge confirm, unsubscribe and preferences links and admin sessions."""
    secret = settings.secret_key
    if not secret or secret == DEV_SECRET_KEY:
        if settings.is_production:
            return [error("SECRET_KEY is the development default: set FLASK_SECRET_KEY to a long random value")]
        return [warning("SECRET_KEY is the development default: fine for trying out, never for real members "
                        "(set FLASK_SECRET_KEY)")]
    problem = weak_key("SECRET_KEY", secret)
    if problem:  # in production the app refuses to start with it as well (config.load_config)
        level = error if settings.is_production else warning
        return [level(f"SECRET_KEY is {problem}: use at least {MIN_SECRET_LENGTH} random characters")]
    return [ok("SECRET_KEY is set")]


def check_suppression_key(settings: Settings) -> list[Finding]:
    """Suppression hashes are keyed: derived from SECRET_KEY, a new SECRET_KEY would forget them (C3)."""
    key = settings.configured_suppression_key
    if key and key == settings.secret_key:
        return [warning("MAILER_SUPPRESSION_KEY equals SECRET_KEY: give it its own value")]
    problem = weak_key("MAILER_SUPPRESSION_KEY", key)
    if problem:
        level = error if settings.is_production else warning
        return [level(f"MAILER_SUPPRESSION_KEY is {problem}: use at least {MIN_SECRET_LENGTH} random characters")]
    if key:
        return [ok("MAILER_SUPPRESSION_KEY is set separately from SECRET_KEY")]
    if settings.is_production:
        return [warning("MAILER_SUPPRESSION_KEY is not set: suppressed addresses are hashed with a key derived "
                        "from SECRET_KEY, so changing SECRET_KEY would forget who must never be mailed again")]
    return [ok("MAILER_SUPPRESSION_KEY not set (derived from SECRET_KEY; set its own value in production)")]


def check_base_url(settings: Settings) -> list[Finding]:
    """Every link in every email starts with MAILER_BASE_URL; one-click unsubscribe needs https (RFC 8058)."""
    raw = settings.base_url.strip()
    if not raw:
        return [error("MAILER_BASE_URL is not set: links in emails would go nowhere")]
    try:
        parts = urlsplit(raw)
        host = parts.hostname
    except ValueError:
        parts, host = None, None
    if parts is None or parts.scheme not in ("http", "https") or not host or parts.query or parts.fragment:
        return [error(f"MAILER_BASE_URL {raw!r} is not a valid http(s) URL like https://members.example.org")]
    if settings.is_production and parts.scheme != "https":
        return [error(f"MAILER_BASE_URL {raw} is not https: links carry secret tokens, and one-click "
                      "unsubscribe requires https")]
    if settings.is_production and host in ("127.0.0.1", "localhost", "::1"):
        return [error(f"MAILER_BASE_URL {raw} points at this machine: members could not open the links")]
    return [ok(f"MAILER_BASE_URL is {raw}")]


def check_sender(settings: Settings) -> list[Finding]:
    """Mail needs a From address; in production one on a real domain (not .test or .localhost)."""
    from email_validator import EmailNotValidError, validate_email

    name, address = settings.sender_parts
    try:
        validate_email(address, check_deliverability=False, test_environment=not settings.is_production)
    except EmailNotValidError:
        return [error(f"MAIL_DEFAULT_SENDER {settings.mail_default_sender!r} has no valid address: "
                      "use 'Forum name <noreply@your-domain>'")]
    return [ok(f"mail comes from {name} <{address}>")]


def check_proxy(settings: Settings) -> list[Finding]:
    """Behind nginx without ProxyFix every visitor looks like 127.0.0.1 and shares one rate limit."""
    if settings.proxy_fix_x_for > 0:
        return [ok(f"trusting X-Forwarded-For from {settings.proxy_fix_x_for} proxy(ies)")]
    if settings.is_production:
        return [warning("MAILER_PROXY_FIX_X_FOR is 0: behind nginx every visitor shares the proxy's IP address, "
                        "so one busy join rate limit stops everyone (set it to 1 behind one proxy)")]
    return []


def check_bounce_port(settings: Settings) -> list[Finding]:
    """The bounce port speaks plain SMTP without a password (issue 15): on anything but loopback, only
    the relay that forwards bounces should be able to reach it."""
    port = settings.bounce_smtp_port
    if port <= 0:
        return []
    host = settings.bounce_smtp_host
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if loopback:
        return [ok(f"the bounce port listens on {host}:{port} (this machine only)")]
    return [warning(f"the bounce port listens on {host or 'every address'}:{port}: let only the relay or MX "
                    "that forwards bounces reach it (a firewall rule); it asks for no password")]


def check_dkim(settings: Settings) -> list[Finding]:
    """Which key signs, and how strong it is (E4). A key that cannot be read or parsed never gets this
    far: Settings refuses it at start-up, since it would stop every tick."""
    if not settings.dkim_private_key:
        if settings.is_production:
            return [warning("DKIM signing is off (MAILER_DKIM_KEY_FILE): unless your relay signs for your "
                            "domain, receivers may treat the mail as spam")]
        return [ok("DKIM signing is off (optional)")]
    import dkim.crypto

    bits = int(dkim.crypto.parse_pem_private_key(settings.dkim_private_key)["modulus"]).bit_length()
    findings = [ok(f"DKIM signs as {settings.dkim_selector}._domainkey.{settings.dkim_domain} with a {bits}-bit key")]
    if bits < 2048:
        findings.append(warning(f"DKIM key is {bits} bits: receivers expect at least 2048"))
    from_domain = settings.from_address.rpartition("@")[2]
    if not dkim_aligned(settings.dkim_domain, from_domain):
        findings.append(warning(
            f"DKIM signs for {settings.dkim_domain} but mail is from {from_domain}: DMARC alignment fails unless "
            f"both are under the same registered domain; set MAILER_DKIM_DOMAIN to {from_domain} (and publish the "
            "key there)"
        ))
    return findings


def dkim_aligned(dkim_domain: str, from_domain: str) -> bool:
    """Whether a DKIM signature for `dkim_domain` aligns with the From domain for DMARC: the same
    domain, or one a subdomain of the other (relaxed alignment; siblings under one registered domain
    also align, which this cannot tell without the public suffix list)."""
    signer, sender = dkim_domain.lower().rstrip("."), from_domain.lower().rstrip(".")
    return signer == sender or signer.endswith("." + sender) or sender.endswith("." + signer)


def check_settings(settings: Settings) -> list[Finding]:
    """All the checks that read only the configuration."""
    return [
        *check_secret_key(settings),
        *check_suppression_key(settings),
        *check_base_url(settings),
        *check_sender(settings),
        *check_proxy(settings),
        *check_bounce_port(settings),
        *check_dkim(settings),
    ]


def check_admin_passwords(with_dev_password: list[str], settings: Settings) -> list[Finding]:
    """`seed-dev`'s password is in the README: an admin who still has it is open to anyone (issue 15).

    Takes the addresses of the admins whose password is the development one (admins.find_admins_with_password)."""
    if not with_dev_password:
        return [ok("no admin has the development password")]
    who = ", ".join(with_dev_password)
    if settings.is_production:
        return [error(f"admin {who} has the development password from seed-dev, which anyone can read in the "
                      "README: set a new one with `flask --app wsgi create-admin ADDRESS`")]
    return [warning(f"admin {who} has the development password from seed-dev: fine for trying out, never for "
                    "real members (set a new one with create-admin)")]


# --- things we have to reach ------------------------------------------------------


def check_smtp(open_connection: Callable[[], smtplib.SMTP], settings: Settings) -> list[Finding]:
    """Connect, STARTTLS and log in the way the worker will, then say QUIT."""
    where = f"{settings.mail_server}:{settings.mail_port}"
    how = " with TLS" if settings.mail_use_tls or settings.mail_use_ssl else ""
    try:
        smtp = open_connection()
    except (OSError, smtplib.SMTPException) as exc:
        reason = redact(" ".join(str(exc).split()) or type(exc).__name__)
        return [error(f"SMTP server {where} cannot be reached{how}: {reason}")]
    try:
        smtp.quit()
    except (OSError, smtplib.SMTPException):
        smtp.close()
    logged_in = " and logged in" if settings.mail_username and settings.mail_password else ""
    findings = [ok(f"SMTP server {where} answered{how}{logged_in}")]
    if settings.is_production and not how and settings.mail_server not in ("127.0.0.1", "localhost", "::1"):
        findings.append(warning(f"SMTP to {where} is not encrypted: set FLASK_MAIL_USE_TLS=true (port 587) "
                                "or FLASK_MAIL_USE_SSL=true (port 465)"))
    return findings


def check_database(database_uri: str, migrations_dir: str | Path, *, timeout: float = 5.0) -> list[Finding]:
    """Reachable, and migrated to the revision this code expects (`flask db upgrade`)."""
    from alembic.migration import MigrationContext
    from alembic.script import ScriptDirectory

    url = make_url(database_uri)
    shown = url.render_as_string(hide_password=True)
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:" and not os.path.exists(url.database):
            return [error(f"database {shown} does not exist: run `flask --app wsgi db upgrade`")]
        connect_args: dict[str, Any] = {"timeout": timeout}
    else:
        connect_args = {"connect_timeout": max(1, int(timeout))}
    engine = create_engine(url, connect_args=connect_args)
    alembic_log = logging.getLogger("alembic.runtime.migration")
    level = alembic_log.level
    alembic_log.setLevel(logging.WARNING)  # "Context impl ..." is noise between our lines
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
            current = set(MigrationContext.configure(connection).get_current_heads())
    except Exception as exc:  # whatever the driver raises, the answer is "unreachable"
        reason = redact(" ".join(str(getattr(exc, "orig", None) or exc).split())[:300])
        return [error(f"database {shown} cannot be reached: {reason}")]
    finally:
        alembic_log.setLevel(level)
        engine.dispose()
    heads = set(ScriptDirectory(str(migrations_dir)).get_heads())
    if current != heads:
        have = ", ".join(sorted(current)) or "empty"
        return [error(f"database {shown} is at schema {have}, this code needs {', '.join(sorted(heads))}: "
                      "run `flask --app wsgi db upgrade`")]
    return [ok(f"database {shown} answers, schema is up to date ({', '.join(sorted(heads))})")]
