"""Configuration (P4, Security): defaults, then FLASK_* environment; production refuses unsafe settings."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT

from mailer import create_app
from mailer.config import DEV_SECRET_KEY, ConfigurationError


def config_for(tmp_path: Path, **values: Any) -> dict[str, Any]:
    return {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'mailer.db'}", **values}


PRODUCTION_SECRET = "a-long-random-production-secret-of-48-characters"


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No FLASK_* or MAILER_ENV from the machine running the tests."""
    for name in list(os.environ):
        if name.startswith("FLASK_") or name == "MAILER_ENV":
            monkeypatch.delenv(name)
    return monkeypatch


@pytest.mark.parametrize("secret", [DEV_SECRET_KEY, "", None])
def test_production_refuses_the_default_secret(tmp_path, secret):
    """P4: in production the development secret (or none) would let anyone forge links, so create_app refuses."""
    config = config_for(tmp_path, MAILER_ENV="production")
    if secret is not None:
        config["SECRET_KEY"] = secret
    with pytest.raises(ConfigurationError, match="FLASK_SECRET_KEY"):
        create_app(config)


def test_production_is_matched_whatever_the_case(tmp_path):
    """'Production' in an env file is still production: the checks cannot be dodged by a capital letter."""
    with pytest.raises(ConfigurationError):
        create_app(config_for(tmp_path, MAILER_ENV="Production"))


def test_production_with_a_real_secret_starts_with_secure_cookies(tmp_path):
    """Security: production session cookies are Secure, HttpOnly and SameSite=Lax."""
    app = create_app(config_for(tmp_path, MAILER_ENV="production", SECRET_KEY=PRODUCTION_SECRET))
    assert app.config["SESSION_COOKIE_SECURE"] is True
    assert app.config["SESSION_COOKIE_HTTPONLY"] is True
    assert app.config["SESSION_COOKIE_SAMESITE"] == "Lax"


def test_production_cookies_are_secure_even_if_configured_otherwise(tmp_path):
    """Security: a leftover SESSION_COOKIE_SECURE=False does not weaken production."""
    app = create_app(
        config_for(tmp_path, MAILER_ENV="production", SECRET_KEY=PRODUCTION_SECRET,
                   SESSION_COOKIE_SECURE=False)
    )
    assert app.config["SESSION_COOKIE_SECURE"] is True


def test_development_allows_the_default_secret_without_secure_cookies(tmp_path):
    """Trying it out on a laptop (P3) needs no secret and works over plain http://127.0.0.1."""
    app = create_app(config_for(tmp_path))
    assert app.config["SECRET_KEY"] == DEV_SECRET_KEY
    assert app.config["SESSION_COOKIE_SECURE"] is False


def test_flask_prefixed_environment_overrides_the_defaults(clean_env, tmp_path):
    """P4: FLASK_* variables configure the app, with JSON values typed (ports are ints, flags bools)."""
    uri = f"sqlite:///{tmp_path / 'env.db'}"
    clean_env.setenv("FLASK_SECRET_KEY", "from-the-environment")
    clean_env.setenv("FLASK_SQLALCHEMY_DATABASE_URI", uri)
    clean_env.setenv("FLASK_MAIL_SERVER", "smtp.example.org")
    clean_env.setenv("FLASK_MAIL_PORT", "2525")
    clean_env.setenv("FLASK_MAIL_USE_TLS", "true")
    clean_env.setenv("FLASK_MAIL_DEFAULT_SENDER", "Env Forum <news@env.example>")
    clean_env.setenv("FLASK_MAILER_BASE_URL", "https://members.env.example")
    clean_env.setenv("FLASK_MAILER_TICK_SECONDS", "0.5")
    app = create_app(None)
    config = app.config
    assert config["SECRET_KEY"] == "from-the-environment"
    assert config["SQLALCHEMY_DATABASE_URI"] == uri
    assert config["MAIL_SERVER"] == "smtp.example.org"
    assert config["MAIL_PORT"] == 2525
    assert config["MAIL_USE_TLS"] is True
    assert config["MAIL_DEFAULT_SENDER"] == "Env Forum <news@env.example>"
    assert config["MAILER_BASE_URL"] == "https://members.env.example"
    assert config["MAILER_TICK_SECONDS"] == 0.5
    assert app.extensions["mail"].port == 2525  # Flask-Mail saw the same values
    assert config["MAILER_FORUM_NAME"] == "Parent Carer Forum"  # untouched keys keep their defaults


def test_production_from_the_environment_needs_a_secret_from_the_environment(clean_env, tmp_path):
    """P4: MAILER_ENV=production in the environment turns the checks on; FLASK_SECRET_KEY satisfies them."""
    clean_env.setenv("FLASK_SQLALCHEMY_DATABASE_URI", f"sqlite:///{tmp_path / 'env.db'}")
    clean_env.setenv("MAILER_ENV", "production")
    with pytest.raises(ConfigurationError):
        create_app(None)
    clean_env.setenv("FLASK_SECRET_KEY", PRODUCTION_SECRET)
    app = create_app(None)
    assert app.config["MAILER_ENV"] == "production"
    assert app.config["SESSION_COOKIE_SECURE"] is True


def test_flask_command_in_production_without_a_secret_exits_with_a_clear_message(tmp_path):
    """P4: `flask --app wsgi routes` in production with no FLASK_SECRET_KEY exits non-zero and names the fix."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLASK_")}
    env.update(MAILER_ENV="production", FLASK_SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'mailer.db'}")
    result = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", "routes"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert "SECRET_KEY" in last_line and "FLASK_SECRET_KEY" in last_line, result.stderr
    assert "/healthz" not in result.stdout  # no routes were listed: the app never started

    env["FLASK_SECRET_KEY"] = PRODUCTION_SECRET
    started = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", "routes"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )
    assert started.returncode == 0, started.stderr
    assert "/healthz" in started.stdout


@pytest.mark.parametrize("key", ["SECRET_KEY", "MAILER_SUPPRESSION_KEY"])
def test_production_refuses_a_key_shorter_than_32_characters(tmp_path, key):
    """Issue 15: a short key can be guessed; production refuses it at start-up, naming the key and the fix."""
    config = config_for(tmp_path, MAILER_ENV="production", SECRET_KEY=PRODUCTION_SECRET)
    config[key] = "x" * 31
    with pytest.raises(ConfigurationError, match=f"{key} is only 31 characters.*FLASK_{key}"):
        create_app(config)
    config[key] = "x" * 32
    assert create_app(config).config[key] == "x" * 32


@pytest.mark.parametrize("key", ["SECRET_KEY", "MAILER_SUPPRESSION_KEY"])
@pytest.mark.parametrize("placeholder", ["replace-with-a-long-random-value", "replace-with-another-long-random-value"])
def test_production_refuses_the_placeholders_of_the_settings_template(tmp_path, key, placeholder):
    """Issue 15: deploy/mailer.env.example's placeholders are 32 and 38 characters, but public: a copied template
    left unedited is refused, naming the key, not started with a key everyone can read."""
    assert placeholder in (ROOT / "deploy" / "mailer.env.example").read_text()
    config = config_for(tmp_path, MAILER_ENV="production", SECRET_KEY=PRODUCTION_SECRET)
    config[key] = placeholder
    with pytest.raises(ConfigurationError, match=f"{key} is the placeholder from mailer.env.example.*FLASK_{key}"):
        create_app(config)
