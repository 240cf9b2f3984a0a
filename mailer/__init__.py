"""mailer: membership mailing for a parent-carer forum."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from flask import Flask
from sqlalchemy import event
from werkzeug.middleware.proxy_fix import ProxyFix

from mailer.clock import SystemClock
from mailer.config import load_config
from mailer.extensions import csrf, db, limiter, login_manager, migrate
from mailer.extensions import mail as mail_extension
from mailer.logs.setup import configure_logging, install_request_ids
from mailer.settings import EXTENSION_KEY, Settings
from mailer.uploads import private_sqlite_file

ROOT = Path(__file__).resolve().parent.parent

# gunicorn's code for "a worker failed to boot": systemd's RestartPreventExitStatus=3 leaves a refused
# start stopped instead of restarting it forever with the port open and requests hanging (issue 15).
EXIT_REFUSED_TO_START = 3


def create_app(test_config: dict[str, Any] | None = None, *, settings: Settings | None = None) -> Flask:
    """Wire configuration, extensions, blueprints and commands; start nothing (P1).

    The configuration is read and checked once, into Settings; a bad value raises ConfigurationError
    naming the key. A worker's sending processes pass the `settings` they were handed instead."""
    app = Flask(
        __name__,
        instance_path=str(ROOT / "instance"),
        instance_relative_config=True,
        template_folder=str(ROOT / "templates"),
    )
    load_config(app, test_config)
    if settings is None:
        settings = Settings.from_config(app.config, instance_path=app.instance_path)
    app.config.update(settings.extension_config())  # Flask-Mail and Flask-SQLAlchemy see the parsed values
    app.extensions[EXTENSION_KEY] = settings
    configure_logging(app, settings)
    install_request_ids(app)  # first, so every later hook's log lines carry the id
    _engine_options(app)
    db.init_app(app)
    with app.app_context():
        if db.engine.dialect.name == "sqlite":
            event.listen(db.engine, "do_connect", _private_sqlite_file)
            event.listen(db.engine, "connect", _sqlite_pragmas)
    migrate.init_app(app, db, directory=str(ROOT / "migrations"))
    mail_extension.init_app(app)
    csrf.init_app(app)
    from mailer.web import limit_storage  # noqa: F401  registers RATELIMIT_STORAGE_URI "database://" with limits

    limiter.init_app(app)
    login_manager.init_app(app)
    app.extensions["mailer.clock"] = SystemClock()

    from mailer.mail.layout import install_layout_override
    from mailer.ops.cli import register_cli
    from mailer.web import register_web

    # instance/email_templates/email/layout.html (MAILER_EMAIL_TEMPLATE_DIR), when it passes its checks
    install_layout_override(app, settings.email_template_dir)
    register_web(app)
    register_cli(app)
    _proxy_fix(app, settings)
    return app


def create_app_or_exit() -> Flask:
    """The app, or one line naming the bad setting and exit code 3, not a traceback (issue 15.8).

    wsgi.py builds the app this way, and gunicorn.conf.py calls it once in gunicorn's master before it
    listens or forks, so a refusal never depends on how gunicorn's workers race each other."""
    from .config import ConfigurationError

    try:
        return create_app()
    except ConfigurationError as exc:
        print(f"mailer: refusing to start: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(EXIT_REFUSED_TO_START) from None


def _proxy_fix(app: Flask, settings: Settings) -> None:
    """Behind nginx, believe X-Forwarded-* from that many proxies, so rate limits see the client's IP."""
    counts = settings.proxy_fix_counts
    if any(counts.values()):
        # Flask documents middleware as replacing the wsgi_app method; mypy flags any method assignment.
        app.wsgi_app = ProxyFix(app.wsgi_app, **counts)  # type: ignore[method-assign]


def _engine_options(app: Flask) -> None:
    """Statements are logged without their values, whatever the configuration says: a failing
    statement's error (and the traceback logged for it) would otherwise carry a member's name or
    address. SQLite also waits for the other process's lock instead of failing at once."""
    options = dict(app.config.get("SQLALCHEMY_ENGINE_OPTIONS") or {})
    options["hide_parameters"] = True
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        options["connect_args"] = {"timeout": 30, **(options.get("connect_args") or {})}
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = options


def _private_sqlite_file(_dialect: Any, _record: Any, cargs: list[Any], cparams: dict[str, Any]) -> None:
    """The database file holds every member: owner-only (0600), whatever the umask (issue 15)."""
    database = str(cargs[0]) if cargs else str(cparams.get("database") or "")
    if database and database != ":memory:" and not database.startswith("file:") and not cparams.get("uri"):
        private_sqlite_file(database)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """WAL lets the web app read while the worker writes; foreign keys make ON DELETE work."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
