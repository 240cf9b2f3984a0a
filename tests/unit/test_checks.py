"""`flask --app wsgi check` (issue 10): one line per missing or unsafe setting, non-zero when sending is blocked."""

from __future__ import annotations

import smtplib
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import base_config

from mailer import create_app
from mailer.config import DEV_SECRET_KEY
from mailer.extensions import db
from mailer.ops.checks import (
    Level,
    check_admin_passwords,
    check_base_url,
    check_bounce_port,
    check_database,
    check_dkim,
    check_proxy,
    check_secret_key,
    check_sender,
    check_smtp,
    check_suppression_key,
)
from support.settings import settings_for
from support.smtp_sink import free_port

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"
PRODUCTION = {"MAILER_ENV": "production"}


def levels(findings: list[Any]) -> list[Level]:
    return [f.level for f in findings]


@pytest.fixture(scope="module")
def dkim_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Made the way deploy/README.md says (openssl genrsa), so the check accepts what the docs produce."""
    path = tmp_path_factory.mktemp("dkim") / "dkim.key"
    subprocess.run(["openssl", "genrsa", "-out", str(path), "2048"], check=True, capture_output=True)
    return path


# --- configuration only ------------------------------------------------------------


@pytest.mark.parametrize("secret", [DEV_SECRET_KEY, ""])
def test_default_secret_is_an_error_in_production_and_a_warning_when_trying_out(secret):
    """Security: the development secret lets anyone forge unsubscribe and confirm links."""
    assert levels(check_secret_key(settings_for({"SECRET_KEY": secret, **PRODUCTION}))) == [Level.ERROR]
    assert levels(check_secret_key(settings_for({"SECRET_KEY": secret}))) == [Level.WARNING]


def test_short_secret_warns_and_a_long_one_is_ok():
    """A short secret can be guessed offline from one signed link; 32+ random characters cannot. Short is an
    error in production (where the app refuses to start with it), and so is the env template's placeholder."""
    assert levels(check_secret_key(settings_for({"SECRET_KEY": "short-secret"}))) == [Level.WARNING]
    assert levels(check_secret_key(settings_for({"SECRET_KEY": "x" * 40, **PRODUCTION}))) == [Level.OK]
    assert levels(check_secret_key(settings_for({"SECRET_KEY": "x" * 20, **PRODUCTION}))) == [Level.ERROR]
    assert levels(check_secret_key(settings_for({"SECRET_KEY": "replace-with-a-long-random-value"}))) == [
        Level.WARNING
    ]


def test_suppression_key_must_be_its_own_value_in_production():
    """C3: suppression hashes keyed by SECRET_KEY would be forgotten when the secret is rotated."""
    secret = "s" * 40
    assert levels(check_suppression_key(settings_for(SECRET_KEY=secret, **PRODUCTION))) == [Level.WARNING]
    assert levels(check_suppression_key(settings_for(SECRET_KEY=secret, MAILER_SUPPRESSION_KEY=secret))) == [
        Level.WARNING
    ]
    separate = settings_for(SECRET_KEY=secret, MAILER_SUPPRESSION_KEY="k" * 40, **PRODUCTION)
    assert levels(check_suppression_key(separate)) == [Level.OK]
    assert levels(check_suppression_key(settings_for(SECRET_KEY=secret))) == [Level.OK]
    assert levels(check_suppression_key(settings_for(SECRET_KEY=secret, MAILER_SUPPRESSION_KEY="k" * 20))) == [
        Level.WARNING
    ]
    short_in_production = settings_for(SECRET_KEY=secret, MAILER_SUPPRESSION_KEY="k" * 20, **PRODUCTION)
    assert levels(check_suppression_key(short_in_production)) == [Level.ERROR]


@pytest.mark.parametrize(
    ("url", "production", "level"),
    [
        ("", False, Level.ERROR),
        ("members.example.org", False, Level.ERROR),
        ("ftp://members.example.org", False, Level.ERROR),
        ("https://members.example.org/?x=1", False, Level.ERROR),
        ("http://127.0.0.1:5000", False, Level.OK),
        ("http://members.example.org", True, Level.ERROR),
        ("https://127.0.0.1", True, Level.ERROR),
        ("https://members.example.org", True, Level.OK),
        ("https://members.example.org/mailer", True, Level.OK),
    ],
)
def test_base_url_must_be_a_url_and_https_in_production(url, production, level):
    """Interfaces: every emailed link starts with MAILER_BASE_URL; RFC 8058 one-click needs https."""
    config = {"MAILER_BASE_URL": url, **(PRODUCTION if production else {})}
    assert levels(check_base_url(settings_for(config))) == [level]


def test_sender_needs_a_valid_address_on_a_real_domain_in_production():
    """E2: From needs an address; a .test domain is fine in tests and development, not for real mail."""
    assert levels(check_sender(settings_for(MAIL_DEFAULT_SENDER="Forum <noreply@forum.example>"))) == [Level.OK]
    assert levels(check_sender(settings_for(MAIL_DEFAULT_SENDER="Forum"))) == [Level.ERROR]
    assert levels(check_sender(settings_for(MAIL_DEFAULT_SENDER="Forum <noreply@forum.test>"))) == [Level.OK]
    assert levels(check_sender(settings_for(MAIL_DEFAULT_SENDER="Forum <noreply@forum.test>", **PRODUCTION))) == [
        Level.ERROR
    ]


def test_proxy_fix_off_in_production_warns():
    """Behind nginx without ProxyFix all visitors share one IP, so one rate limit stops everyone."""
    assert levels(check_proxy(settings_for(PRODUCTION))) == [Level.WARNING]
    assert levels(check_proxy(settings_for({"MAILER_PROXY_FIX_X_FOR": 1, **PRODUCTION}))) == [Level.OK]
    assert check_proxy(settings_for({})) == []


def test_a_bounce_port_open_beyond_this_machine_warns():
    """Issue 15: the bounce port asks for no password; off it says nothing, on loopback it is fine, on any
    other address check says to let only the relay reach it."""
    assert check_bounce_port(settings_for(MAILER_BOUNCE_SMTP_PORT=0, MAILER_BOUNCE_SMTP_HOST="0.0.0.0")) == []
    for host in ("127.0.0.1", "::1", "localhost"):
        findings = check_bounce_port(settings_for(MAILER_BOUNCE_SMTP_PORT=2525, MAILER_BOUNCE_SMTP_HOST=host))
        assert levels(findings) == [Level.OK]
    for host in ("0.0.0.0", "", "192.0.2.10", "mx.forum.example"):
        findings = check_bounce_port(settings_for(MAILER_BOUNCE_SMTP_PORT=2525, MAILER_BOUNCE_SMTP_HOST=host))
        assert levels(findings) == [Level.WARNING] and "firewall" in findings[0].message


def test_dkim_key_from_openssl_is_accepted(dkim_key):
    """E4: the key deploy/README.md makes is one the signer can use."""
    findings = check_dkim(settings_for(
        MAILER_DKIM_KEY_FILE=str(dkim_key), MAILER_DKIM_SELECTOR="mailer1",
        MAIL_DEFAULT_SENDER="Forum <noreply@forum.example>", MAILER_BASE_URL="https://x",
    ))
    assert levels(findings) == [Level.OK]
    assert "mailer1._domainkey.forum.example" in findings[0].message
    assert "2048-bit" in findings[0].message


def test_dkim_for_another_domain_than_the_sender_is_a_warning(dkim_key):
    """E8: DMARC needs the DKIM domain aligned with the From domain: another domain is a warning, a parent is fine."""
    def dkim_findings(domain: str) -> list[Any]:
        return check_dkim(settings_for(
            MAILER_DKIM_KEY_FILE=str(dkim_key), MAILER_DKIM_SELECTOR="mailer1", MAILER_DKIM_DOMAIN=domain,
            MAIL_DEFAULT_SENDER="Forum <noreply@news.forum.example>", MAILER_BASE_URL="https://x",
        ))

    for aligned in ("news.forum.example", "forum.example", "NEWS.Forum.Example."):
        assert levels(dkim_findings(aligned)) == [Level.OK], aligned
    for other in ("mailhost.example", "forum.example.net", "notforum.example"):
        findings = dkim_findings(other)
        assert levels(findings) == [Level.OK, Level.WARNING], other
        assert "DMARC" in findings[1].message and "MAILER_DKIM_DOMAIN to news.forum.example" in findings[1].message


def test_an_admin_with_the_development_password_is_an_error_in_production():
    """Issue 15 (14): seed-dev's password is in the README; in production an admin who has it blocks, else a warning."""
    assert levels(check_admin_passwords([], settings_for(PRODUCTION))) == [Level.OK]
    flagged = check_admin_passwords(["admin@forum.example"], settings_for(PRODUCTION))
    assert levels(flagged) == [Level.ERROR] and "admin@forum.example" in flagged[0].message
    assert levels(check_admin_passwords(["admin@forum.example"], settings_for({}))) == [Level.WARNING]


def test_dkim_off_is_fine_when_trying_out_and_a_warning_in_production():
    """E4: DKIM is optional (a relay may sign), but production without it deserves a reminder."""
    assert levels(check_dkim(settings_for({}))) == [Level.OK]
    assert levels(check_dkim(settings_for(PRODUCTION))) == [Level.WARNING]


# --- things the check has to reach ----------------------------------------------------


def test_smtp_that_answers_is_ok(smtp):
    """The check connects to a real SMTP server and says QUIT; nothing is sent."""
    config = {"MAIL_SERVER": smtp.host, "MAIL_PORT": smtp.port}
    findings = check_smtp(lambda: smtplib.SMTP(smtp.host, smtp.port, timeout=5), settings_for(config))
    assert levels(findings) == [Level.OK]


def test_smtp_unreachable_blocks_sending_quickly():
    """S2: the check uses a short timeout, so a wrong host or port fails in seconds with one line."""
    port = free_port()
    started = time.monotonic()
    findings = check_smtp(lambda: smtplib.SMTP("127.0.0.1", port, timeout=2),
                          settings_for(MAIL_SERVER="127.0.0.1", MAIL_PORT=port))
    assert time.monotonic() - started < 5
    assert levels(findings) == [Level.ERROR]
    assert f"127.0.0.1:{port} cannot be reached" in findings[0].message


def test_smtp_error_text_is_shown_without_addresses():
    """A relay's refusal can quote the login name (an address): the line shows the reason, not the address."""

    def refuse() -> smtplib.SMTP:
        raise smtplib.SMTPAuthenticationError(535, b"5.7.8 Username noreply@forum.example and password not accepted")

    (finding,) = check_smtp(refuse, settings_for(MAIL_SERVER="smtp.example.net", MAIL_PORT=587, MAIL_USE_TLS=True))
    assert finding.level is Level.ERROR
    assert "password not accepted" in finding.message
    assert "noreply@forum.example" not in finding.message


def test_database_migrated_is_ok(sqlite_uri):
    """P4: a database at the head revision answers and is up to date."""
    (finding,) = check_database(sqlite_uri, MIGRATIONS)
    assert finding.level is Level.OK and "up to date" in finding.message


def test_missing_sqlite_file_is_an_error_and_is_not_created(tmp_path):
    """The check never creates an empty database that would hide a wrong path."""
    path = tmp_path / "nowhere.db"
    (finding,) = check_database(f"sqlite:///{path}", MIGRATIONS)
    assert finding.level is Level.ERROR and "db upgrade" in finding.message
    assert not path.exists()


def test_database_not_migrated_is_an_error(tmp_path):
    """P4: a database behind the code's migrations blocks sending until `db upgrade` runs."""
    path = tmp_path / "empty.db"
    path.touch()
    (finding,) = check_database(f"sqlite:///{path}", MIGRATIONS)
    assert finding.level is Level.ERROR and "is at schema empty" in finding.message


def test_postgresql_unreachable_is_an_error_without_the_password():
    """A closed port is reported in one line that never prints the database password."""
    url = f"postgresql+psycopg://mailer:hunter2-secret@127.0.0.1:{free_port()}/mailer"
    (finding,) = check_database(url, MIGRATIONS, timeout=2)
    assert finding.level is Level.ERROR and "cannot be reached" in finding.message
    assert "hunter2-secret" not in finding.message


# --- the command -------------------------------------------------------------------------


def run_check(config: dict[str, Any]) -> Any:
    app = create_app(config)
    try:
        return app.test_cli_runner().invoke(args=["check", "--smtp-timeout", "2"])
    finally:
        with app.app_context():
            db.engine.dispose()


def test_check_command_all_ok_exits_zero(sqlite_uri, smtp, dkim_key):
    """Issue 10: a production-ready configuration prints only OK lines and exits 0."""
    result = run_check({
        **base_config(sqlite_uri, smtp),
        "TESTING": False, "MAILER_LOG_SETUP": False,
        "MAILER_ENV": "production", "SECRET_KEY": "p" * 48, "MAILER_SUPPRESSION_KEY": "q" * 48,
        "MAILER_PROXY_FIX_X_FOR": 1, "MAILER_DKIM_KEY_FILE": str(dkim_key),
        "MAIL_DEFAULT_SENDER": "Forum <noreply@forum.example>", "MAILER_BASE_URL": "https://members.forum.example",
    })
    lines = result.output.strip().splitlines()
    assert result.exit_code == 0, result.output
    assert lines and all(line.startswith("OK ") for line in lines), result.output
    assert any("SMTP server" in line for line in lines) and any("database" in line for line in lines)


def test_check_command_reports_each_problem_on_one_line_and_exits_non_zero(tmp_path, sqlite_uri):
    """Issue 10: default secret, bad base URL, no SMTP: one line each, exit 1. (An unreadable DKIM key
    stops the start itself: tests/unit/test_settings.py.)"""
    result = run_check({
        **base_config(sqlite_uri),
        "SECRET_KEY": DEV_SECRET_KEY, "MAILER_BASE_URL": "not a url", "MAIL_PORT": free_port(),
    })
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    errors = [line for line in lines if line.startswith("ERROR")]
    assert any("MAILER_BASE_URL" in line for line in errors), result.output
    assert any("SMTP server" in line for line in errors), result.output
    assert any(line.startswith("WARNING") and "SECRET_KEY" in line for line in lines), result.output
    assert any(line.startswith("OK") and "database" in line for line in lines), result.output


# --- the development admin (issue 15, item 14) -----------------------------------------------------


def production_config(database_uri: str, **extra: Any) -> dict[str, Any]:
    return {**base_config(database_uri), "TESTING": False, "MAILER_LOG_SETUP": False, "MAILER_ENV": "production",
            "SECRET_KEY": "p" * 48, "MAILER_SUPPRESSION_KEY": "q" * 48, **extra}


def count_rows(config: dict[str, Any]) -> tuple[int, int]:
    from sqlalchemy import func, select

    from mailer.models import Admin, Announcement

    app = create_app(config)
    with app.app_context():
        counts = (db.session.scalar(select(func.count()).select_from(Admin)),
                  db.session.scalar(select(func.count()).select_from(Announcement)))
        db.session.remove()
        db.engine.dispose()
    return counts


def run_command(config: dict[str, Any], *args: str) -> Any:
    app = create_app(config)
    try:
        return app.test_cli_runner().invoke(args=list(args))
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


def test_seed_dev_refuses_in_production_and_creates_nothing(sqlite_uri):
    """Issue 15 (14): `seed-dev` with MAILER_ENV=production exits non-zero with a clear message and
    creates neither the admin with the published password nor the sample drafts."""
    result = run_command(production_config(sqlite_uri), "seed-dev")
    assert result.exit_code != 0
    assert "production" in result.output and "nothing was created" in result.output, result.output
    assert "create-admin" in result.output
    assert count_rows(production_config(sqlite_uri)) == (0, 0)


def test_seed_dev_works_when_trying_out_and_check_then_flags_its_password(sqlite_uri, smtp):
    """Issue 15 (14): seed-dev still makes the development admin outside production; `check` then names that
    admin: a warning when trying out, an error (exit 1) once MAILER_ENV is production."""
    trying_out = {**base_config(sqlite_uri, smtp), "TESTING": False, "MAILER_LOG_SETUP": False}
    seeded = run_command(trying_out, "seed-dev")
    assert seeded.exit_code == 0, seeded.output
    assert count_rows(trying_out)[0] == 1

    checked = run_command(trying_out, "check", "--smtp-timeout", "2")
    assert any(line.startswith("WARNING") and "admin@forum.example" in line and "development password" in line
               for line in checked.output.splitlines()), checked.output

    checked = run_command(production_config(sqlite_uri, MAIL_SERVER=smtp.host, MAIL_PORT=smtp.port), "check",
                          "--smtp-timeout", "2")
    assert checked.exit_code == 1, checked.output
    assert any(line.startswith("ERROR") and "admin@forum.example" in line for line in checked.output.splitlines())
