"""Fixtures: a fresh app on its own database for every test, a real SMTP server, a frozen clock.

Database tests run on SQLite and, when TEST_POSTGRES_URL is set, again on PostgreSQL.
With CI set (or MAILER_REQUIRE_ALL_TESTS=1), a missing PostgreSQL or browser fails the run
instead of skipping, so nothing passes by not running."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from mailer import create_app
from mailer.clock import FrozenClock
from mailer.extensions import db
from support.smtp_sink import SmtpSink

ROOT = Path(__file__).resolve().parent.parent

REQUIRE_ALL = os.environ.get("CI", "").lower() in ("1", "true") or os.environ.get("MAILER_REQUIRE_ALL_TESTS") == "1"
POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "")


def skip_or_fail(reason: str) -> None:
    """Skip on a developer's machine; fail in CI, where everything must run."""
    if REQUIRE_ALL:
        pytest.fail(f"required in CI but unavailable: {reason}")
    pytest.skip(reason)


def base_config(database_uri: str, smtp: SmtpSink | None = None) -> dict[str, Any]:
    return {
        "TESTING": True,
        "SECRET_KEY": "test-only-secret",
        "SQLALCHEMY_DATABASE_URI": database_uri,
        "MAIL_SERVER": smtp.host if smtp else "127.0.0.1",
        "MAIL_PORT": smtp.port if smtp else 9,
        "MAIL_DEFAULT_SENDER": "Test Parent Carer Forum <noreply@forum.test>",
        "MAILER_BASE_URL": "https://forum.test",
        "MAILER_FORUM_NAME": "Test Parent Carer Forum",
        "MAILER_CONTACT_ADDRESS": "hello@forum.test",
        "MAILER_SMTP_TIMEOUT": 5,
        "MAILER_WORKER_ID": "test-worker",
        "RATELIMIT_ENABLED": False,
        "MAILER_UNDO_SECONDS": 0,  # issue 18's undo window: tests that want one set it
    }


# --- running in parallel ------------------------------------------------------

# Tests that start real processes and judge what happens in time (kill -9 mid-send, unsubscribes racing a send,
# several workers, gunicorn and nginx): with pytest-xdist (scripts/test.sh, --dist loadgroup) they all run on one
# test process, one after another, so two of them never compete for the machine's CPUs; the rest share the others.
REAL_PROCESS_MODULES = frozenset({
    "test_engine", "test_reclaim", "test_unsubscribe_race", "test_worker_process", "test_production",
    "test_rate_limits",
})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.stem in REAL_PROCESS_MODULES:
            item.add_marker(pytest.mark.xdist_group("real-processes"))


# --- password hashes ------------------------------------------------------------


@pytest.fixture(autouse=True)
def cheaper_password_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Admins made in tests get scrypt hashes with n=2**10 instead of 2**15 (about 30 times less work; Django's
    documentation advises the same for test suites). Logging in still checks them the real way: a stored hash
    names its own parameters. Processes a test starts (gunicorn, `flask create-admin`) keep the real cost."""
    from mailer.admins import accounts

    monkeypatch.setattr(accounts, "PASSWORD_HASH_METHOD", "scrypt:1024:8:1")


# --- databases -------------------------------------------------------------


class DatabaseFactory:
    """Builds each test's database from a migrated template, so every test starts from `db upgrade`."""

    def __init__(self, tmp_root: Path) -> None:
        self.tmp_root = tmp_root
        self._sqlite_template: Path | None = None
        self._pg_template: str | None = None

    def sqlite(self, directory: Path) -> str:
        if self._sqlite_template is None:
            template = self.tmp_root / "template.db"
            _migrate(f"sqlite:///{template}")
            self._sqlite_template = template
        target = directory / "mailer.db"
        shutil.copyfile(self._sqlite_template, target)
        return f"sqlite:///{target}"

    def postgres(self) -> tuple[str, str]:
        url = make_url(POSTGRES_URL)
        admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
        try:
            if self._pg_template is None:
                name = f"tmpl_{uuid.uuid4().hex[:8]}"
                with admin.connect() as conn:
                    conn.execute(text(f'CREATE DATABASE "{name}"'))
                _migrate(url.set(database=name).render_as_string(hide_password=False))
                self._pg_template = name
            name = f"t_{uuid.uuid4().hex[:10]}"
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{self._pg_template}"'))
        finally:
            admin.dispose()
        return url.set(database=name).render_as_string(hide_password=False), name

    def drop_postgres(self, name: str) -> None:
        admin = create_engine(make_url(POSTGRES_URL).set(database="postgres"), isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        finally:
            admin.dispose()


def _migrate(uri: str) -> None:
    from flask_migrate import upgrade

    app = create_app(base_config(uri))
    with app.app_context():
        upgrade()
        db.session.remove()
        db.engine.dispose()


@pytest.fixture(scope="session")
def database_factory(tmp_path_factory: pytest.TempPathFactory) -> DatabaseFactory:
    return DatabaseFactory(tmp_path_factory.mktemp("db-templates"))


@pytest.fixture(params=["sqlite", "postgresql"])
def database_uri(request: pytest.FixtureRequest, database_factory: DatabaseFactory, tmp_path: Path) -> Iterator[str]:
    """A new, migrated, seeded database for this test only."""
    if request.param == "sqlite":
        yield database_factory.sqlite(tmp_path)
        return
    if not POSTGRES_URL:
        skip_or_fail("TEST_POSTGRES_URL is not set")
    uri, name = database_factory.postgres()
    try:
        yield uri
    finally:
        database_factory.drop_postgres(name)


@pytest.fixture
def postgres_uri(database_factory: DatabaseFactory) -> Iterator[str]:
    """For tests that only make sense on PostgreSQL (several workers)."""
    if not POSTGRES_URL:
        skip_or_fail("TEST_POSTGRES_URL is not set")
    uri, name = database_factory.postgres()
    try:
        yield uri
    finally:
        database_factory.drop_postgres(name)


@pytest.fixture
def sqlite_uri(database_factory: DatabaseFactory, tmp_path: Path) -> str:
    """For tests about one-process behaviour that needs no second backend."""
    return database_factory.sqlite(tmp_path)


# --- mail, time, app -------------------------------------------------------


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    sink = SmtpSink().start()
    try:
        yield sink
    finally:
        sink.stop()


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def make_app(database_uri: str, smtp: SmtpSink, clock: FrozenClock) -> Iterator[Any]:
    """Build apps on this test's database; extra config per call."""
    apps = []

    def factory(**overrides: Any):  # type: ignore[no-untyped-def]
        app = create_app({**base_config(database_uri, smtp), **overrides})
        app.extensions["mailer.clock"] = clock
        apps.append(app)
        return app

    yield factory
    for app in apps:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


@pytest.fixture
def app(make_app: Any) -> Any:
    return make_app()


@pytest.fixture
def client(app: Any) -> Any:
    return app.test_client()
