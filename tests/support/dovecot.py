"""A real IMAP server for tests: Dovecot on loopback with a throwaway config in a temp dir.

Debian's dovecot-imapd (scripts/system-packages.sh installs it). Plain-text login on
127.0.0.1 only, one user, maildir under the temp dir; stopped and removed after the test."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from support.smtp_sink import free_port

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
USER = "bounces"
PASSWORD = "imap-test-password"


def available() -> bool:
    return Path(DOVECOT).exists()


class Dovecot:
    def __init__(self) -> None:
        # Its own directory under /tmp, not pytest's tmp_path: Dovecot's unprivileged processes
        # must reach the password file, and pytest's directories are private to the test user.
        self.directory = Path(tempfile.mkdtemp(prefix="mailer-dovecot-"))
        self.directory.chmod(0o755)
        self.host = "127.0.0.1"
        self.port = free_port()
        self.username, self.password = USER, PASSWORD
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Dovecot:
        d = self.directory
        for sub in ("run", "state", "mail", "home"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            # Dovecot will not run mail processes as root; use its own unprivileged users.
            mail_user, internal, login = pwd.getpwnam("dovecot"), "dovecot", "dovenull"
        else:
            mail_user = pwd.getpwuid(os.geteuid())
            internal = login = mail_user.pw_name
        for sub in ("mail", "home"):
            os.chown(d / sub, mail_user.pw_uid, mail_user.pw_gid)
        (d / "passwd").write_text(f"{USER}:{{PLAIN}}{PASSWORD}::::::\n")
        (d / "dovecot.conf").write_text(
            f"""
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
info_log_path = {d}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = {internal}
default_login_user = {login}
first_valid_uid = {mail_user.pw_uid}
first_valid_gid = {mail_user.pw_gid}
mail_location = maildir:{d}/mail/%u
passdb {{
  driver = passwd-file
  args = {d}/passwd
}}
userdb {{
  driver = static
  args = uid={mail_user.pw_uid} gid={mail_user.pw_gid} home={d}/home/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
service imap-login {{
  chroot =
}}
"""
        )
        self.process = subprocess.Popen(
            [DOVECOT, "-F", "-c", str(d / "dovecot.conf")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 15
        while True:
            try:
                with socket.create_connection((self.host, self.port), timeout=1) as sock:
                    if sock.recv(100).startswith(b"* OK"):
                        return self
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                log = self.log()
                self.stop()
                raise RuntimeError(f"dovecot did not start: {log[-2000:]}")
            time.sleep(0.05)

    def log(self) -> str:
        path = self.directory / "dovecot.log"
        out = ""
        if self.process is not None and self.process.stdout is not None and self.process.poll() is not None:
            out = self.process.stdout.read().decode(errors="replace")
        return out + (path.read_text(errors="replace") if path.exists() else "")

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None
        shutil.rmtree(self.directory, ignore_errors=True)
