"""Real worker processes for tests: started with the test's database and SMTP sink, killed for real."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


class WorkerProcess:
    """`flask --app wsgi worker` in its own process group, its log in a file the test can read."""

    def __init__(self, database_uri: str, smtp: Any, log_path: Path, **config: Any) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("MAILER_ENV", None)
        settings = {
            "SQLALCHEMY_DATABASE_URI": database_uri,
            "SECRET_KEY": "test-only-secret",
            "MAIL_SERVER": smtp.host,
            "MAIL_PORT": smtp.port,
            "MAIL_DEFAULT_SENDER": "Test Parent Carer Forum <noreply@forum.test>",
            "MAILER_BASE_URL": "https://forum.test",
            "MAILER_FORUM_NAME": "Test Parent Carer Forum",
            "MAILER_CONTACT_ADDRESS": "hello@forum.test",
            "MAILER_TICK_SECONDS": 0.2,
            **config,
        }
        for key, value in settings.items():
            env[f"FLASK_{key}"] = str(value)
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115  closed in stop(): it outlives this method
        self.process = subprocess.Popen(
            [sys.executable, "-m", "flask", "--app", "wsgi", "worker"],
            cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, text: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.log():
            if time.monotonic() > deadline:
                raise AssertionError(f"worker log never said {text!r}:\n{self.log()[-3000:]}")
            if self.process.poll() is not None and text not in self.log():
                raise AssertionError(f"worker exited ({self.process.returncode}):\n{self.log()[-3000:]}")
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: no cleanup, no chance to mark anything."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self, timeout: float = 15.0) -> int:
        returncode = stop_process_group(self.process, timeout)
        self._log.close()
        return returncode


def stop_process_group(process: subprocess.Popen[Any], timeout: float) -> int:
    """SIGTERM the process's group and wait; SIGKILL what is still there after `timeout` seconds."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    return process.returncode
