"""Real processes (P2, P4, P5): the worker, send-due and db upgrade run as `flask --app wsgi ...`.

Each subprocess is configured only through FLASK_* environment variables, as an operator would."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from conftest import POSTGRES_URL, ROOT, base_config, skip_or_fail
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from mailer import create_app
from mailer.clock import SystemClock
from mailer.extensions import db
from mailer.models import ConsentWording, Group, OutboxMessage, OutboxState
from support.smtp_sink import SmtpSink, free_port
from support.web import join

SECRET_KEY = base_config("sqlite://")["SECRET_KEY"]


def flask_env(database_uri: str, smtp: SmtpSink | None = None, **extra: str) -> dict[str, str]:
    """The environment an operator would set; nothing FLASK_* or MAILER_ENV leaks in from ours."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLASK_") and k != "MAILER_ENV"}
    env.update(
        FLASK_SQLALCHEMY_DATABASE_URI=database_uri,
        FLASK_MAILER_TICK_SECONDS="0.5",
        FLASK_SECRET_KEY=SECRET_KEY,
        FLASK_MAILER_BASE_URL="https://forum.test",
        PYTHONUNBUFFERED="1",
    )
    if smtp is not None:
        env.update(FLASK_MAIL_SERVER=smtp.host, FLASK_MAIL_PORT=str(smtp.port))
    env.update(extra)
    return env


def flask_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "flask", "--app", "wsgi", *args]


def run_flask(env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        flask_command(*args), cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture
def live_app(app: Any) -> Any:
    """The test app on the real clock, since the worker process in the other process runs on it."""
    app.extensions["mailer.clock"] = SystemClock()
    return app


def outbox_states(app: Any) -> list[OutboxState]:
    with app.app_context():
        return list(db.session.scalars(select(OutboxMessage.state).order_by(OutboxMessage.id)))


# --- worker and send-due ---------------------------------------------------


def test_worker_process_sends_a_confirmation_and_stops_cleanly_on_sigterm(live_app, database_uri, smtp, tmp_path):
    """P2/S6: the worker process sends what the web app queued within seconds, and SIGTERM stops it with exit 0."""
    log_path = tmp_path / "worker.log"
    with log_path.open("w") as log:
        worker = subprocess.Popen(
            flask_command("worker"), cwd=ROOT, env=flask_env(database_uri, smtp), stdout=log, stderr=subprocess.STDOUT
        )
    try:
        response = join(live_app.test_client(), email="worker@example.org")
        assert response.status_code == 303
        try:
            (received,) = smtp.wait_for(1, timeout=20)
        except AssertionError:
            raise AssertionError(f"worker sent nothing; its log:\n{log_path.read_text()}") from None
        assert received.rcpt_tos == ["worker@example.org"]
        assert received.message["Subject"].startswith("Please confirm")
        assert "https://forum.test/confirm/" in received.message.get_body(("plain",)).get_content()
        assert worker.poll() is None, "the worker should keep running between ticks"

        worker.send_signal(signal.SIGTERM)
        try:
            code = worker.wait(timeout=10)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"worker ignored SIGTERM; its log:\n{log_path.read_text()}") from None
        assert code == 0, log_path.read_text()
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(timeout=10)
    output = log_path.read_text()
    assert "Traceback" not in output, output
    assert "worker: stopped" in output
    assert outbox_states(live_app) == [OutboxState.SENT]


def test_send_due_command_sends_once_and_prints_a_summary(live_app, database_uri, smtp):
    """P2/P5: `send-due` runs one tick for cron users and says what it did."""
    join(live_app.test_client(), email="cron@example.org")
    result = run_flask(flask_env(database_uri, smtp), "send-due")
    assert result.returncode == 0, result.stderr
    assert "1 sent" in result.stdout, result.stdout
    (received,) = smtp.wait_for(1)
    assert received.rcpt_tos == ["cron@example.org"]
    assert outbox_states(live_app) == [OutboxState.SENT]

    again = run_flask(flask_env(database_uri, smtp), "send-due")
    assert again.returncode == 0, again.stderr
    assert "0 sent" in again.stdout
    assert len(smtp.received) == 1


# --- db upgrade --------------------------------------------------------------


def assert_fresh_schema(uri: str) -> None:
    """Seeded as the first migration promises, and matching the models exactly."""
    engine = create_engine(uri)
    try:
        with engine.connect() as conn:
            assert conn.scalar(select(func.count()).select_from(Group)) == 3
            assert list(conn.scalars(select(ConsentWording.version))) == [1]
            assert conn.scalar(text("SELECT count(*) FROM alembic_version")) == 1
            differences = compare_metadata(MigrationContext.configure(conn), db.metadata)
        assert differences == [], f"the migrations and the models differ: {differences}"
    finally:
        engine.dispose()


def test_db_upgrade_builds_the_schema_on_an_empty_sqlite_file(tmp_path):
    """P4: `flask db upgrade` on an empty SQLite file creates every table, 3 groups and consent wording v1."""
    database = tmp_path / "fresh.db"
    database.touch()
    uri = f"sqlite:///{database}"
    result = run_flask(flask_env(uri), "db", "upgrade")
    assert result.returncode == 0, result.stderr
    assert_fresh_schema(uri)

    again = run_flask(flask_env(uri), "db", "upgrade")  # already at head: nothing to do, no error
    assert again.returncode == 0, again.stderr
    assert_fresh_schema(uri)


def test_db_upgrade_builds_the_schema_on_an_empty_postgresql_database():
    """P4: the same migrations build the same schema on a fresh PostgreSQL database."""
    if not POSTGRES_URL:
        skip_or_fail("TEST_POSTGRES_URL is not set")
    url = make_url(POSTGRES_URL)
    name = f"upgrade_{uuid.uuid4().hex[:10]}"
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        uri = url.set(database=name).render_as_string(hide_password=False)
        result = run_flask(flask_env(uri), "db", "upgrade")
        assert result.returncode == 0, result.stderr
        assert_fresh_schema(uri)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# --- health check ------------------------------------------------------------


def test_healthz_is_200_json_when_the_database_answers(client):
    """Interfaces: /healthz answers 200 with a small JSON body while the database answers."""
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.is_json
    assert response.get_json()["status"] == "ok"


@pytest.mark.parametrize("where", ["postgresql-port-closed", "sqlite-directory-missing"])
def test_healthz_is_503_when_the_database_does_not_answer(tmp_path: Path, where: str):
    """Interfaces: with the database unreachable /healthz says 503 (JSON), never 500 or a hang."""
    if where == "postgresql-port-closed":
        uri = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/mailer"
    else:
        uri = f"sqlite:///{tmp_path / 'no-such-directory' / 'mailer.db'}"
    app = create_app(base_config(uri))
    try:
        response = app.test_client().get("/healthz")
        assert response.status_code == 503
        assert response.is_json
        assert response.get_json()["status"] != "ok"
        again = app.test_client().get("/healthz")  # the failed session was cleaned up
        assert again.status_code == 503
    finally:
        with app.app_context():
            db.engine.dispose()
