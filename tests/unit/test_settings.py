"""Settings (issue 16.2, P4): the configuration parsed once, typed, checked at start-up, one line per mistake."""

from __future__ import annotations

import dataclasses
import os
import pickle
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT

from mailer import create_app
from mailer.config import ConfigurationError
from mailer.settings import WORKER_ID_MAX, Settings, settings_of
from support.settings import settings_for

# Every key Settings reads, as an operator writes it in the environment (FLASK_<key>=<text>), and the
# value it must have once parsed. Flask reads FLASK_* values as JSON when they are JSON ("5", "true"),
# as text otherwise ("off", "20 per hour"); both forms are here.
FROM_ENVIRONMENT: dict[str, tuple[str, Any]] = {
    "SECRET_KEY": ("from-the-environment", "from-the-environment"),
    "MAILER_ENV": ("development", "development"),
    "MAILER_BASE_URL": ("https://members.env.example", "https://members.env.example"),
    "MAILER_FORUM_NAME": ("Env Forum", "Env Forum"),
    "MAILER_CONTACT_ADDRESS": ("hello@env.example", "hello@env.example"),
    "MAILER_PRIVACY_NOTICE_URL": ("https://env.example/privacy", "https://env.example/privacy"),
    "MAILER_FOOTER_LINE": ("Registered charity number 1234567", "Registered charity number 1234567"),
    "MAILER_MESSAGE_ID_DOMAIN": ("mail.env.example", "mail.env.example"),
    "MAILER_REPLY_TO": ("replies@env.example", "replies@env.example"),
    "MAILER_LIST_ID": ("news.env.example", "news.env.example"),
    "MAILER_CONFIRM_MAX_AGE_DAYS": ("3", 3),
    "MAILER_CONFIRMATION_INTERVAL_MINUTES": ("90", 90.0),
    "MAILER_SUPPRESSION_KEY": ("123456", "123456"),  # JSON makes it a number; it is still a key
    "MAILER_UNCONFIRMED_RETENTION_DAYS": ("14", 14.0),
    "MAILER_CONFIRM_REMINDER_DAYS": ("3", 3),
    "MAILER_OUTBOX_RETENTION_DAYS": ("7.5", 7.5),
    "MAILER_DELIVERY_RETENTION_DAYS": ("400", 400.0),
    "MAILER_AUDIT_RETENTION_DAYS": ("365", 365.0),
    "MAILER_TICK_SECONDS": ("0.5", 0.5),
    "MAILER_BATCH_SIZE": ("250", 250),
    "MAILER_OUTBOX_MAX_ATTEMPTS": ("4", 4),
    "MAILER_RETRY_BASE_SECONDS": ("10", 10.0),
    "MAILER_RETRY_MAX_SECONDS": ("600.0", 600.0),
    "MAILER_CLAIM_LEASE_SECONDS": ("120", 120.0),
    "MAILER_RECHECK_SECONDS": ("0.25", 0.25),
    "MAILER_BOUNCE_THRESHOLD": ("5", 5),
    "MAILER_BOUNCE_DECAY_DAYS": ("30", 30.0),
    "MAILER_BOUNCE_ADDRESS": ("bounces@env.example", "bounces@env.example"),
    "MAILER_VERP": ("off", False),
    "MAILER_BOUNCE_SMTP_HOST": ("0.0.0.0", "0.0.0.0"),
    "MAILER_BOUNCE_SMTP_PORT": ("2525", 2525),
    "MAILER_BOUNCE_MAX_BYTES": ("131072", 131072),
    "MAILER_BOUNCE_MESSAGES_PER_MINUTE": ("0", 0),
    "MAILER_BOUNCE_MAX_UNPROCESSED": ("50", 50),
    "MAILER_BOUNCE_MAX_UNPROCESSED_BYTES": ("1048576", 1048576),
    "MAILER_BOUNCE_RETENTION_DAYS": ("90", 90.0),
    "MAILER_BOUNCE_IMAP_HOST": ("imap.env.example", "imap.env.example"),
    "MAILER_BOUNCE_IMAP_PORT": ("143", 143),
    "MAILER_BOUNCE_IMAP_SSL": ("No", False),
    "MAILER_BOUNCE_IMAP_USERNAME": ("bounces", "bounces"),
    "MAILER_BOUNCE_IMAP_PASSWORD": ("imap-password", "imap-password"),
    "MAILER_BOUNCE_IMAP_FOLDER": ("Bounces", "Bounces"),
    "MAILER_HOLD_AFTER_HOURS": ("2", 2.0),
    "MAILER_UNDO_SECONDS": ("30", 30),
    "MAILER_UNSUBSCRIBE_MAILTO": ("mailto:leave@env.example", "mailto:leave@env.example"),
    "MAILER_FEEDBACK_ID": ("env-forum", "env-forum"),
    "MAILER_DKIM_KEY_FILE": ("", ""),  # a real key: test_a_readable_dkim_key_is_read_once_at_start_up
    "MAILER_DKIM_SELECTOR": ("mailer1", "mailer1"),
    "MAILER_DKIM_DOMAIN": ("env.example", "env.example"),
    "MAILER_SMTP_CONCURRENCY": ("3", 3),
    "MAILER_RATE_LIMIT_PER_MINUTE": ("600", 600),
    "MAILER_SMTP_TIMEOUT": ("12.5", 12.5),
    "MAILER_SMTP_CA_FILE": ("/etc/ssl/relay.pem", "/etc/ssl/relay.pem"),
    "MAILER_SMTP_MAX_PER_CONNECTION": ("100", 100),
    "MAILER_WORKER_ID": ("host-1", "host-1"),
    "MAILER_PROXY_FIX_X_FOR": ("1", 1),
    "MAILER_PROXY_FIX_X_PROTO": ("1", 1),
    "MAILER_PROXY_FIX_X_HOST": ("0", 0),
    "MAILER_PROXY_FIX_X_PORT": ("0", 0),
    "MAILER_PROXY_FIX_X_PREFIX": ("1", 1),
    "MAILER_LOG_LEVEL": ("warning", "WARNING"),
    "MAILER_LOG_SETUP": ("false", False),
    "MAILER_JOIN_RATE_LIMIT": ("10 per hour", "10 per hour"),
    "MAILER_JOIN_RATE_LIMIT_PER_ADDRESS": ("3/hour", "3/hour"),
    "MAILER_EMBED_ORIGINS": (
        "https://www.Forum.example  http://127.0.0.1:8080/", ("https://www.forum.example", "http://127.0.0.1:8080")
    ),
    "MAILER_LOGIN_RATE_LIMIT_IP": ("10 per 10 minutes", "10 per 10 minutes"),
    "MAILER_LOGIN_RATE_LIMIT_ACCOUNT": ("3 per 15 minutes; 10 per day", "3 per 15 minutes; 10 per day"),
    "MAILER_TEST_SEND_RATE_LIMIT": ("10 per hour", "10 per hour"),
    "MAILER_RESET_RATE_LIMIT_IP": ("5 per hour", "5 per hour"),
    "MAILER_RESET_RATE_LIMIT_ADDRESS": ("2 per hour", "2 per hour"),
    "MAILER_ADMIN_IDLE_MINUTES": ("60", 60.0),
    "MAILER_IMPORT_CONFIRMATIONS_PER_MINUTE": ("0", 0.0),
    "MAILER_IMPORT_MAX_BYTES": ("1048576", 1048576),
    "MAILER_IMPORT_DIR": ("/srv/mailer/imports", "/srv/mailer/imports"),
    "MAILER_DOCUMENT_MAX_BYTES": ("2097152", 2097152),
    "MAILER_DOCUMENT_DIR": ("/srv/mailer/documents", "/srv/mailer/documents"),
    "MAILER_EMAIL_TEMPLATE_DIR": ("/srv/mailer/templates", "/srv/mailer/templates"),
    "MAIL_SERVER": ("smtp.env.example", "smtp.env.example"),
    "MAIL_PORT": ("587", 587),
    "MAIL_USE_TLS": ("true", True),
    "MAIL_USE_SSL": ("0", False),
    "MAIL_USERNAME": ("mailer", "mailer"),
    "MAIL_PASSWORD": ("123456", "123456"),
    "MAIL_DEFAULT_SENDER": ("Env Forum <news@env.example>", "Env Forum <news@env.example>"),
}


def keyed_fields() -> dict[str, str]:
    """{configuration key: Settings field} for every field read from the configuration."""
    return {f.metadata["key"]: f.name for f in dataclasses.fields(Settings) if "key" in f.metadata}


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """No FLASK_* or MAILER_ENV from the machine running the tests; a database of this test's own."""
    for name in list(os.environ):
        if name.startswith("FLASK_") or name == "MAILER_ENV":
            monkeypatch.delenv(name)
    monkeypatch.setenv("FLASK_SQLALCHEMY_DATABASE_URI", f"sqlite:///{tmp_path / 'env.db'}")
    return monkeypatch


def config_for(tmp_path: Path, **values: Any) -> dict[str, Any]:
    return {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'mailer.db'}", "TESTING": True, **values}


# --- every key, from the environment ---------------------------------------------------------------


def test_the_table_covers_every_key_settings_reads():
    """A key added to Settings without a line in FROM_ENVIRONMENT fails here, so every key's parsing is tested."""
    assert set(keyed_fields()) - {"SQLALCHEMY_DATABASE_URI"} == set(FROM_ENVIRONMENT)


def test_every_key_is_parsed_to_its_type_from_flask_environment_variables(clean_env):
    """P4: each FLASK_<key> string arrives in Settings as the type the code uses (int, float, bool, text)."""
    for key, (text, _) in FROM_ENVIRONMENT.items():
        clean_env.setenv(f"FLASK_{key}", text)
    settings = settings_of(create_app(None))
    fields = keyed_fields()
    for key, (text, expected) in FROM_ENVIRONMENT.items():
        value = getattr(settings, fields[key])
        assert value == expected and type(value) is type(expected), (key, text, value)


def test_flask_mail_sees_the_parsed_values_not_the_strings(clean_env):
    """FLASK_MAIL_USE_TLS=off is off for Flask-Mail too (the bare string would have counted as on)."""
    clean_env.setenv("FLASK_MAIL_USE_TLS", "off")
    clean_env.setenv("FLASK_MAIL_USE_SSL", "no")
    clean_env.setenv("FLASK_MAIL_PORT", "2525")
    app = create_app(None)
    state = app.extensions["mail"]
    assert (state.use_tls, state.use_ssl, state.port) == (False, False, 2525)
    assert settings_of(app).mail_use_tls is False


# --- one line naming the key -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value", "says"),
    [
        ("MAIL_PORT", "abc", "a whole number"),  # a port that is not a number
        ("MAILER_BOUNCE_SMTP_PORT", "70000", "from 0 to 65535"),
        ("MAILER_BATCH_SIZE", "abc", "a whole number"),
        ("MAILER_BATCH_SIZE", "2.5", "a whole number"),
        ("MAILER_BATCH_SIZE", "0", "at least 1"),
        ("MAILER_CONFIRM_REMINDER_DAYS", "-1", "at least 0"),  # issue 20.7: 0 is off, never negative
        ("MAILER_CONFIRM_REMINDER_DAYS", "2.5", "a whole number"),
        ("MAILER_BATCH_SIZE", True, "a whole number"),  # FLASK_MAILER_BATCH_SIZE=true arrives as a bool
        ("MAILER_TICK_SECONDS", "-5", "a number more than 0"),  # a negative interval
        ("MAILER_TICK_SECONDS", "0", "a number more than 0"),
        ("MAILER_RETRY_BASE_SECONDS", "-1", "a number at least 0"),
        ("MAILER_OUTBOX_RETENTION_DAYS", "nan", "a number"),
        ("MAILER_AUDIT_RETENTION_DAYS", "0", "a number at least 1"),  # V5: 0 would empty the audit log daily
        ("MAILER_ADMIN_IDLE_MINUTES", "an hour", "a number"),
        ("MAILER_VERP", "maybe", "true or false"),  # a flag that is neither on nor off
        ("MAIL_USE_TLS", "2", "true or false"),
        ("MAILER_LOG_SETUP", "sometimes", "true or false"),
        ("MAILER_JOIN_RATE_LIMIT", "lots", "a rate limit"),  # a rate limit Flask-Limiter cannot read
        ("MAILER_LOGIN_RATE_LIMIT_ACCOUNT", "5 per fortnight", "a rate limit"),
        ("MAILER_LOG_LEVEL", "LOUD", "one of DEBUG"),
        ("MAIL_DEFAULT_SENDER", ["a", "b", "c"], "text like"),
        ("MAILER_FEEDBACK_ID", "forum:north", "letters, digits"),
        ("MAILER_UNDO_SECONDS", "-1", "from 0 to 3600"),  # issue 18: the undo window
        ("MAILER_UNDO_SECONDS", "a minute", "a whole number"),
        ("MAILER_UNDO_SECONDS", "7200", "from 0 to 3600"),  # a colon would add a Feedback-ID field
    ],
)
def test_a_bad_value_stops_the_start_with_one_line_naming_the_key(tmp_path, key, value, says):
    """P4: create_app refuses a value the code could not use, in one line that names the key and how to fix it."""
    with pytest.raises(ConfigurationError) as refused:
        create_app(config_for(tmp_path, **{key: value}))
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith(key) and f"FLASK_{key}" in message and says in message, message


@pytest.mark.parametrize("problem", ["missing", "unreadable", "not-a-key"])
def test_an_unusable_dkim_key_stops_the_start(tmp_path, problem):
    """E4: a key the worker could not read or parse would fail every tick; now the start fails instead, in one line."""
    path = tmp_path / "dkim.key"
    if problem == "unreadable":
        path.mkdir()  # reading a directory fails even for root
    elif problem == "not-a-key":
        path.write_text("-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n")
    with pytest.raises(ConfigurationError) as refused:
        create_app(config_for(tmp_path, MAILER_DKIM_KEY_FILE=str(path)))
    message = str(refused.value)
    assert "\n" not in message and message.startswith("MAILER_DKIM_KEY_FILE") and str(path) in message


@pytest.fixture(scope="module")
def dkim_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("dkim") / "dkim.key"
    subprocess.run(["openssl", "genrsa", "-out", str(path), "2048"], check=True, capture_output=True)
    return path


def test_a_readable_dkim_key_is_read_once_at_start_up(tmp_path, dkim_key):
    """E4: the key is read when the app starts; the signer uses those bytes, the selector and the Message-ID domain."""
    settings = settings_of(create_app(config_for(
        tmp_path, MAILER_DKIM_KEY_FILE=str(dkim_key), MAILER_DKIM_SELECTOR="mailer1",
        MAIL_DEFAULT_SENDER="Forum <noreply@forum.example>",
    )))
    signer = settings.dkim_signer
    assert signer is not None and signer.private_key == dkim_key.read_bytes()
    assert (signer.selector, signer.domain) == (b"mailer1", b"forum.example")
    assert "PRIVATE KEY" not in repr(settings)


def test_a_non_ascii_dkim_selector_stops_the_start(tmp_path, dkim_key):
    """E4: a selector DNS cannot hold would make signing fail at every tick."""
    with pytest.raises(ConfigurationError, match=r"^MAILER_DKIM_SELECTOR must be plain ASCII"):
        create_app(config_for(tmp_path, MAILER_DKIM_KEY_FILE=str(dkim_key), MAILER_DKIM_SELECTOR="mäil"))


def test_flask_check_with_a_bad_number_exits_with_one_line_naming_the_key(tmp_path):
    """P4: `flask --app wsgi check` (a real process) with FLASK_MAILER_BATCH_SIZE=abc prints one line that
    names MAILER_BATCH_SIZE, no traceback, and exits non-zero before checking anything."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLASK_") and k != "MAILER_ENV"}
    env.update(FLASK_SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'mailer.db'}", FLASK_MAILER_BATCH_SIZE="abc")
    for command in ([sys.executable, "-m", "flask", "--app", "wsgi", "check"], [sys.executable, "-c", "import wsgi"]):
        result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False)
        assert result.returncode != 0, command
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith("mailer: refusing to start: MAILER_BATCH_SIZE must be a whole number"), lines
        assert "'abc'" in lines[0] and "FLASK_MAILER_BATCH_SIZE" in lines[0]
        assert result.stdout == ""


def test_a_secret_in_a_bad_value_is_not_repeated(tmp_path):
    """Security: the refusal names the key but does not print a secret's value."""
    with pytest.raises(ConfigurationError) as refused:
        create_app(config_for(tmp_path, MAIL_PASSWORD={"hunter2": "secret"}))
    assert str(refused.value).startswith("MAIL_PASSWORD must be text") and "hunter2" not in str(refused.value)


# --- one object: frozen, picklable, derived once -------------------------------------------------------


def test_settings_are_frozen():
    """Nothing changes configuration at run time: a worker that needs other values makes other Settings."""
    settings = settings_for()
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.rate_limit_per_minute = 10  # type: ignore[misc]


def test_settings_pickle_with_every_value_and_keep_secrets_out_of_repr(dkim_key):
    """A worker hands its sending processes their Settings by pickling; repr (logs, tracebacks) shows no secret."""
    settings = settings_for(SECRET_KEY="s" * 40, MAIL_PASSWORD="relay-password", MAILER_DKIM_KEY_FILE=str(dkim_key),
                            SQLALCHEMY_DATABASE_URI="postgresql+psycopg://mailer:db-password@db/mailer")
    copy = pickle.loads(pickle.dumps(settings))
    assert copy == settings and copy.dkim_private_key == dkim_key.read_bytes()
    assert copy.engine_settings.bounce_rules == settings.engine_settings.bounce_rules
    shown = repr(settings)
    for secret in ("s" * 40, "relay-password", "db-password", "PRIVATE KEY"):
        assert secret not in shown


def test_derived_values_follow_the_documented_fallbacks():
    """README: Message-ID domain from the sender, List-Id from it, Reply-To from the contact address,
    the suppression key from SECRET_KEY unless set, VERP only when on."""
    settings = settings_for(MAIL_DEFAULT_SENDER="Forum <noreply@forum.example>",
                            MAILER_CONTACT_ADDRESS="hi@forum.example")
    assert settings.message_id_domain == "forum.example"
    assert settings.list_id == "members.forum.example"
    assert settings.mail_settings.list_id == "Parent Carer Forum <members.forum.example>"
    assert settings.reply_to == "hi@forum.example"
    assert settings.sender_parts == ("Forum", "noreply@forum.example")
    assert settings.envelope_from == "noreply@forum.example"
    assert settings_for(MAIL_DEFAULT_SENDER="noreply@forum.example").sender_parts[0] == "Parent Carer Forum"
    pair = ("Pair", "pair@forum.example")
    assert settings_for(MAIL_DEFAULT_SENDER=pair).sender_parts == pair
    assert settings.suppression_key != settings_for(SECRET_KEY="another").suppression_key
    assert settings_for(MAILER_SUPPRESSION_KEY="own").suppression_key == b"own"
    assert settings.bounce_policy.verp_key and not settings_for(MAILER_VERP=False).bounce_policy.verp_key
    assert settings.import_dir == Path(settings.instance_path) / "imports"
    assert settings_for(MAILER_IMPORT_DIR="/srv/imports").import_dir == Path("/srv/imports")


def test_the_undo_window_defaults_to_a_minute_and_may_be_turned_off():
    """Issue 18 (V1): MAILER_UNDO_SECONDS is 60 unless set; 0 turns the window off; it is a timedelta for the domain."""
    assert settings_for().undo_seconds == 60 and settings_for().undo_window.total_seconds() == 60
    assert settings_for(MAILER_UNDO_SECONDS="0").undo_window.total_seconds() == 0
    assert settings_for(MAILER_UNDO_SECONDS=15.0).undo_seconds == 15


def test_one_worker_id_fits_the_claim_column_for_claims_and_heartbeats():
    """The engine names claims "<worker id>:<12 hex>" in 100 characters, and the heartbeat uses the same id."""
    settings = settings_for(MAILER_WORKER_ID="w" * 150)
    assert settings.worker_id == "w" * WORKER_ID_MAX
    assert settings.engine_settings.worker_id == settings.worker_id
    assert len(f"{settings.worker_id}:{'0' * 12}") == 100
    assert re.fullmatch(r".+:\d+", settings_for().worker_id)  # host name and process id when not set


def test_sending_processes_share_the_rate_limit_under_their_own_ids():
    """MAILER_SMTP_CONCURRENCY=3 with 100 a minute: three single senders, pair/2 and pair/3, 33 a minute each."""
    processes = settings_for(MAILER_WORKER_ID="pair", MAILER_SMTP_CONCURRENCY=3, MAILER_RATE_LIMIT_PER_MINUTE=100)
    shares = processes.sending_processes()
    assert [s.worker_id for s in shares] == ["pair", "pair/2", "pair/3"]
    assert {(s.smtp_concurrency, s.rate_limit_per_minute) for s in shares} == {(1, 33)}
    assert [s.worker_id for s in settings_for(MAILER_WORKER_ID="w" * 150, MAILER_SMTP_CONCURRENCY=2)
            .sending_processes()] == ["w" * WORKER_ID_MAX, "w" * (WORKER_ID_MAX - 2) + "/2"]
    assert settings_for(MAILER_SMTP_CONCURRENCY=2).sending_processes()[1].rate_limit_per_minute == 0  # no limit


def test_no_module_reads_mailer_keys_from_app_config():
    """Issue 16.2: MAILER_* and MAIL_* keys are read in mailer/settings.py (and loaded in mailer/config.py) only;
    pages read `settings`, not `config`."""
    mailer = ROOT / "mailer"
    reads = re.compile(r"""config(\[|\.get\()\s*f?["']MAIL(ER)?_|config\.MAIL(ER)?_""")
    offenders = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in [*mailer.rglob("*.py"), *(ROOT / "templates").rglob("*.html")]
        if path.name not in ("settings.py", "config.py") or path.parent != mailer
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if reads.search(line)
    ]
    assert offenders == []


def test_the_audit_log_is_kept_two_years_by_default(tmp_path):
    """V5 (issue 19): MAILER_AUDIT_RETENTION_DAYS defaults to 730 days, and the daily purge keeps that long."""
    settings = settings_of(create_app(config_for(tmp_path)))
    assert settings.audit_retention_days == 730.0
    assert settings.retention.audit == timedelta(days=730)
