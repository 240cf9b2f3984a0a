"""Shared helpers for the benchmarks: a counting SMTP sink, a migrated app, timing statistics.

Nothing here is imported by the app or the tests. Run as a script (`common.py serve HOST PORT`)
it is the sink's own process; CountingSink starts and drives that for you."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import shutil
import socket
import statistics
import subprocess
import sys
import threading
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def free_port() -> int:
    """aiosmtpd's Controller cannot take port 0 (STACK.md s.4), so find a free port first."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- a sink that counts and does not parse ----------------------------------


@dataclass
class Tally:
    messages: int = 0
    octets: int = 0
    recipients: list[str] = field(default_factory=list)


class _CountingHandler:
    """aiosmtpd handler: accepts everything, keeps a count, the octets and the recipients."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.tally = Tally()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.tally.messages += 1
            self.tally.octets += len(envelope.content or b"")
            self.tally.recipients.extend(envelope.rcpt_tos)
        return "250 Message accepted for delivery"

    def take(self) -> Tally:
        with self.lock:
            tally, self.tally = self.tally, Tally()
        return tally


def _controller(handler: _CountingHandler, host: str, port: int) -> Any:
    from aiosmtpd.controller import Controller  # default size and line-length limits (STACK.md s.4)

    return Controller(handler, hostname=host, port=port, server_hostname="bench.test")


def _serve(host: str, port: int) -> None:
    """The sink process: aiosmtpd in its thread; 'take' on stdin answers a JSON tally on stdout."""
    handler = _CountingHandler()
    controller = _controller(handler, host, port)
    controller.start()
    print("ready", flush=True)
    try:
        for line in sys.stdin:
            if line.strip() == "take":
                print(json.dumps(asdict(handler.take())), flush=True)
            elif line.strip() == "stop":
                break
    finally:
        controller.stop()


class CountingSink:
    """aiosmtpd on 127.0.0.1 that only counts what arrives (no parsing).

    By default it runs in its own process, as a real mail server would, so its work neither
    shares the measured process's GIL nor shows up in its profile; in_process=True runs it
    in a thread of this process instead (as the tests' SmtpSink does). By the time smtplib's
    sendmail() returns, the server has answered 250 to DATA, so the count is exact at once."""

    def __init__(self, port: int | None = None, *, in_process: bool = False) -> None:
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.in_process = in_process
        self._process: subprocess.Popen[str] | None = None
        self._handler: _CountingHandler | None = None
        self._controller: Any = None

    def start(self) -> CountingSink:
        if self.in_process:
            self._handler = _CountingHandler()
            self._controller = _controller(self._handler, self.host, self.port)
            self._controller.start()
            return self
        self._process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "serve", self.host, str(self.port)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._process.stdout is not None
        if self._process.stdout.readline().strip() != "ready":
            self.stop()
            raise RuntimeError(f"the SMTP sink did not start on {self.host}:{self.port}")
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None
        process, self._process = self._process, None
        if process is not None:
            try:
                assert process.stdin is not None
                process.stdin.write("stop\n")
                process.stdin.close()
            except (BrokenPipeError, OSError):
                pass
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()  # only the process this sink started
                process.wait(5)

    def take(self) -> Tally:
        """What arrived since the last take(), and start counting afresh."""
        if self._handler is not None:
            return self._handler.take()
        process = self._process
        assert process is not None and process.stdin is not None and process.stdout is not None, "sink not started"
        process.stdin.write("take\n")
        process.stdin.flush()
        line = process.stdout.readline()
        if not line:
            raise RuntimeError(f"the SMTP sink process has gone (exit code {process.poll()})")
        return Tally(**json.loads(line))

    def __enter__(self) -> CountingSink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def expect_delivered(tally: Tally, expected_recipients: Iterable[str], what: str) -> None:
    """Fail loudly unless exactly these recipients got exactly one message each."""
    expected = sorted(expected_recipients)
    if tally.messages != len(expected) or sorted(tally.recipients) != expected:
        missing = len(set(expected) - set(tally.recipients))
        raise SystemExit(
            f"{what}: the sink received {tally.messages} message(s) for {len(tally.recipients)} "
            f"recipient(s); expected {len(expected)} ({missing} expected recipient(s) missing)"
        )


# --- apps on fresh databases ------------------------------------------------


def bench_config(database_uri: str, sink: CountingSink | None, **overrides: Any) -> dict[str, Any]:
    """Production-like settings (not TESTING) pointing at the sink; no DKIM unless asked."""
    return {
        "SECRET_KEY": "bench-only-secret",
        "SQLALCHEMY_DATABASE_URI": database_uri,
        "MAIL_SERVER": sink.host if sink else "127.0.0.1",
        "MAIL_PORT": sink.port if sink else 9,
        "MAIL_DEFAULT_SENDER": "Bench Parent Carer Forum <noreply@forum.test>",
        "MAILER_BASE_URL": "https://forum.test",
        "MAILER_FORUM_NAME": "Bench Parent Carer Forum",
        "MAILER_CONTACT_ADDRESS": "hello@forum.test",
        "MAILER_SMTP_TIMEOUT": 30,
        "MAILER_WORKER_ID": "bench-worker",
        "RATELIMIT_ENABLED": False,
        "MAILER_LOG_SETUP": False,  # the app's key=value handler is for services; see quiet_logging
        **overrides,
    }


def quiet_logging() -> None:
    """Warnings and errors to stderr, nothing less: Alembic's fileConfig installs its own
    handlers at INFO, and a tick line per round is noise here."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s", force=True)
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd, when the sink is a thread


def make_app(database_uri: str, sink: CountingSink | None, **overrides: Any) -> Any:
    from mailer import create_app

    app = create_app(bench_config(database_uri, sink, **overrides))
    quiet_logging()
    return app


def dispose(app: Any) -> None:
    from mailer.extensions import db

    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def migrated_sqlite(directory: Path, name: str = "mailer.db") -> Path:
    """A new SQLite file brought up to date with `flask db upgrade` (as tests/conftest.py does)."""
    from flask_migrate import upgrade

    target = directory / name
    app = make_app(f"sqlite:///{target}", None)
    chatter = io.StringIO()
    try:
        with app.app_context(), contextlib.redirect_stderr(chatter):
            upgrade()  # Alembic logs each step at INFO: shown only if the upgrade fails
    except BaseException:
        sys.stderr.write(chatter.getvalue())
        raise
    finally:
        dispose(app)
        quiet_logging()
    return target


def fresh_copy(template: Path, directory: Path, name: str) -> str:
    """Copy of a migrated template database; returns its SQLAlchemy URI."""
    target = directory / name
    shutil.copyfile(template, target)
    return f"sqlite:///{target}"


# --- figures ----------------------------------------------------------------


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "serve":
        _serve(sys.argv[2], int(sys.argv[3]))
    else:
        sys.exit("usage: common.py serve HOST PORT  (started by CountingSink)")
