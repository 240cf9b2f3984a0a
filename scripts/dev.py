"""Development supervisor behind ``make run``: mailbox, web app and worker in one go.

Prepares the database, then runs the three processes with their output
prefixed by name, so a newcomer can join, read the confirmation email in the
development mailbox, and send an announcement without any mail account.
Ctrl-C stops everything; if one process dies, the others are stopped too.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO

REPO_ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
FLASK = [PYTHON, "-m", "flask", "--app", "wsgi"]
STOP_TIMEOUT_SECONDS = 10.0

CHILD_ENV_DEFAULTS = {
    "FLASK_MAIL_SERVER": "127.0.0.1",
    "FLASK_MAIL_PORT": "1025",
    "FLASK_MAILER_BASE_URL": "http://127.0.0.1:5000",
    "PYTHONUNBUFFERED": "1",
}

SETUP_COMMANDS: list[tuple[str, list[str]]] = [
    ("db upgrade", [*FLASK, "db", "upgrade"]),
    ("seed-dev", [*FLASK, "seed-dev"]),
]

# The banner waits until these answer, so it is not buried in start-up output.
READY_ADDRESSES = [("127.0.0.1", 5000), ("127.0.0.1", 8025)]
BANNER = (
    "Open http://127.0.0.1:5000/join to join, "
    "and http://127.0.0.1:8025/ to read the mail."
)

_print_lock = threading.Lock()


def say(line: str) -> None:
    """Print one whole line; children's output comes from several threads."""
    with _print_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


@dataclass
class Child:
    """One supervised process, running in its own process group."""

    name: str
    command: list[str]
    extra_env: Mapping[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    output_thread: threading.Thread | None = None

    def start(self, env: Mapping[str, str]) -> None:
        # Its own process group, so that stopping it also stops anything it
        # started (such as the Flask reloader's server process).
        self.process = subprocess.Popen(
            self.command,
            cwd=REPO_ROOT,
            env={**env, **self.extra_env},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            process_group=0,
        )
        self.output_thread = threading.Thread(
            target=self._copy_output, name=f"{self.name}-output", daemon=True
        )
        self.output_thread.start()

    def _copy_output(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        stream: IO[bytes] = self.process.stdout
        for raw_line in iter(stream.readline, b""):
            text = raw_line.decode("utf-8", errors="replace").rstrip("\r\n")
            say(f"{self.name} | {text}")

    def exit_code(self) -> int | None:
        """The exit code if the main process has ended, else ``None``."""
        return None if self.process is None else self.process.poll()

    def signal_group(self, signum: int) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):  # it has already gone
            os.killpg(self.process.pid, signum)

    def group_alive(self) -> bool:
        """Whether any process of the group is left (after reaping our own)."""
        if self.process is None:
            return False
        self.process.poll()
        try:
            os.killpg(self.process.pid, 0)
        except ProcessLookupError:
            return False
        return True


def accepting_connections(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def child_environment(base: Mapping[str, str]) -> dict[str, str]:
    """The caller's environment plus local-mailbox defaults it did not set."""
    env = dict(base)
    for name, value in CHILD_ENV_DEFAULTS.items():
        env.setdefault(name, value)
    return env


def make_children(env: Mapping[str, str]) -> list[Child]:
    return [
        Child(
            "mailbox",
            [PYTHON, "-m", "mailer.ops.devmailbox", "--dir", "instance/mailbox"],
        ),
        Child(
            "web",
            [*FLASK, "run", "--host", "127.0.0.1", "--port", "5000"],
            extra_env={"FLASK_DEBUG": env.get("FLASK_DEBUG", "1")},
        ),
        Child("worker", [*FLASK, "worker"]),
    ]


def run_setup(env: Mapping[str, str]) -> bool:
    """Build the schema and seed data; on failure show why and return False."""
    for label, command in SETUP_COMMANDS:
        result = subprocess.run(
            command,
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        output = result.stdout.decode("utf-8", errors="replace").rstrip()
        for line in output.splitlines():
            say(f"setup | {line}")
        if result.returncode != 0:
            code = result.returncode
            say(f"dev: `flask --app wsgi {label}` failed (exit code {code})")
            return False
    return True


def stop_children(children: list[Child], force_now: threading.Event) -> None:
    """SIGTERM every group, wait up to STOP_TIMEOUT_SECONDS, then SIGKILL."""
    for child in children:
        child.signal_group(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    while time.monotonic() < deadline and not force_now.is_set():
        if not any(child.group_alive() for child in children):
            break
        time.sleep(0.1)
    for child in children:
        if child.group_alive():
            say(f"dev: {child.name} did not stop in time; killing it.")
            child.signal_group(signal.SIGKILL)
    for child in children:
        if child.process is not None:
            child.process.wait()
        if child.output_thread is not None:
            child.output_thread.join(timeout=2)


def main() -> int:
    env = child_environment(os.environ)
    try:
        if not run_setup(env):
            return 1
    except KeyboardInterrupt:
        return 130

    stop_requested = threading.Event()
    force_now = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        # A second Ctrl-C while stopping means "don't wait any longer".
        if stop_requested.is_set():
            force_now.set()
        stop_requested.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    children = make_children(env)
    for child in children:
        child.start(env)

    exit_code = 0
    banner_shown = False
    while not stop_requested.wait(0.2):
        if not banner_shown and all(accepting_connections(*a) for a in READY_ADDRESSES):
            say(BANNER)
            banner_shown = True
        died = [child for child in children if child.exit_code() is not None]
        if died:
            for child in died:
                say(
                    f"dev: {child.name} exited on its own "
                    f"(exit code {child.exit_code()}); stopping the others."
                )
            exit_code = 1
            break

    say("dev: stopping…")
    stop_children(children, force_now)
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
