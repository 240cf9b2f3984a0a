"""The web app under real gunicorn with several worker processes, and a small HTTP client for it.

The access log names the worker process (pid) that answered each request, so a test can tell that
its requests were spread over the workers."""

from __future__ import annotations

import http.client
import os
import re
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from support.processes import stop_process_group
from support.smtp_sink import free_port

ROOT = Path(__file__).resolve().parents[2]
ACCESS_FORMAT = "%(p)s %(m)s %(U)s %(s)s"
ACCESS_LINE = re.compile(r"^<(\d+)> (\S+) (\S+) (\d+)$")


def environment(config: dict[str, Any]) -> dict[str, str]:
    """This process's environment without its FLASK_* and MAILER_* settings, then `config` as FLASK_* variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLASK_", "MAILER_"))}
    env["PYTHONUNBUFFERED"] = "1"
    for key, value in config.items():
        env[f"FLASK_{key}"] = str(value)
    return env


class Gunicorn:
    """`gunicorn --workers N wsgi:app` on a free loopback port, settings as FLASK_* variables (as deploy/ does)."""

    def __init__(self, log_dir: Path, *, workers: int = 2, wait: bool = True, **config: Any) -> None:
        self.port = free_port()
        self.workers = workers
        self.access_log = log_dir / f"access-{self.port}.log"
        self.error_log = log_dir / f"gunicorn-{self.port}.log"
        with self.error_log.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "--workers", str(workers), "--bind", f"127.0.0.1:{self.port}",
                 "--access-logfile", str(self.access_log), "--access-logformat", ACCESS_FORMAT, "wsgi:app"],
                cwd=ROOT, env=environment(config), stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        if wait:
            self._wait_until_ready()

    def log(self) -> str:
        return self.error_log.read_text(errors="replace")

    def worker_pids(self) -> set[int]:
        return {int(pid) for pid in re.findall(r"Booting worker with pid: (\d+)", self.log())}

    def _wait_until_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.worker_pids()) < self.workers or not self.listening():
            if self.process.poll() is not None:
                raise AssertionError(f"gunicorn exited ({self.process.returncode}):\n{self.log()[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"gunicorn did not start:\n{self.log()[-3000:]}")
            time.sleep(0.1)

    def listening(self) -> bool:
        """Whether something accepts connections on its port."""
        with socket.socket() as sock:
            sock.settimeout(0.5)
            return sock.connect_ex(("127.0.0.1", self.port)) == 0

    @contextmanager
    def one_worker_held(self) -> Iterator[None]:
        """Keep one worker busy with a connection that sends nothing, so requests meanwhile go to another.

        The kernel otherwise gives a lone client's connections mostly to the same worker; a sync worker
        that accepted this connection waits for its request until it is closed."""
        holder = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        try:
            yield
        finally:
            holder.close()

    def served(self) -> list[tuple[int, str, str, int]]:
        """(worker pid, method, path, status) for each request answered so far."""
        if not self.access_log.exists():
            return []
        lines = (ACCESS_LINE.match(line) for line in self.access_log.read_text().splitlines())
        return [(int(m[1]), m[2], m[3], int(m[4])) for m in lines if m]

    def wait_for_exit(self, timeout: float) -> int | None:
        """The exit code once gunicorn has stopped by itself, or None if it still runs after `timeout` s."""
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout: float = 20.0) -> int:
        return stop_process_group(self.process, timeout)


class Browser:
    """Plain HTTP (or HTTPS, given a TLS context) with a cookie jar; no redirects followed, so a test sees
    each status, and no Referer sent, as our pages ask of browsers."""

    def __init__(self, port: int, headers: dict[str, str] | None = None, *,
                 tls_context: ssl.SSLContext | None = None, timeout: float = 30) -> None:
        self.port = port
        self.headers = headers or {}
        self.tls_context = tls_context
        self.timeout = timeout
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, form: dict[str, str] | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, http.client.HTTPMessage, str]:
        if self.tls_context is not None:
            connection: http.client.HTTPConnection = http.client.HTTPSConnection(
                "127.0.0.1", self.port, context=self.tls_context, timeout=self.timeout)
        else:
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        sent = {**self.headers, **(headers or {})}
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if form is not None:
            body = urlencode(form)
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            connection.request(method, path, body=body, headers=sent)
            response = connection.getresponse()
            text = response.read().decode("utf-8", "replace")
        finally:
            connection.close()
        for header in response.headers.get_all("Set-Cookie") or []:
            for name, morsel in SimpleCookie(header).items():
                self.cookies[name] = morsel.value
        return response.status, response.headers, text
