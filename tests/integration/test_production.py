"""Running it for real (issue 10): deploy/ followed as a new operator would, against a real PostgreSQL,
gunicorn and nginx; several workers on one database; backups that restore; headers and cookies."""

from __future__ import annotations

import getpass
import json
import os
import re
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import dkim
import pytest
from conftest import POSTGRES_URL, ROOT, base_config, skip_or_fail
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url
from werkzeug.routing import IntegerConverter

from mailer import create_app
from mailer.announcements.lifecycle import AnnouncementDraft, create_announcement
from mailer.clock import SystemClock
from mailer.extensions import db
from mailer.mail.tokens import Purpose, make_token
from mailer.models import ConsentEvent, Member, OutboxMessage, OutboxState, WorkerHeartbeat
from mailer.worker.runner import process_join_requests_for_app
from support.factories import add_member, add_members, link_key_of, logged_in_admin
from support.gunicorn import Browser, Gunicorn
from support.mail import link_to
from support.processes import WorkerProcess
from support.smtp_sink import free_port
from support.web import csrf_token, join

DEPLOY = ROOT / "deploy"
DEPLOY_README = (DEPLOY / "README.md").read_text()
HOST = "members.example.org"
ADMIN = ("you@example.org", "a long admin password for tests")


def documented(command: str) -> str:
    """A command exactly as deploy/README.md gives it: the test runs what the operator is told to run."""
    assert command in DEPLOY_README, f"deploy/README.md no longer says: {command}"
    return command


def wait_until(condition: Any, what: str, timeout: float = 20.0, process: subprocess.Popen[Any] | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if process is not None and process.poll() is not None:
            raise AssertionError(f"{what}: the process exited with {process.returncode}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def answers(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def postgres_database() -> Iterator[str]:
    """A new, empty PostgreSQL database, as `createdb --owner=mailer mailer` leaves it."""
    if not POSTGRES_URL:
        skip_or_fail("TEST_POSTGRES_URL is not set")
    url = make_url(POSTGRES_URL)
    name = f"prod_{uuid.uuid4().hex[:10]}"
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# --- the operator's files, read the way systemd and sh read them -------------------------------------


def env_file_lines(overrides: dict[str, str], extra: str = "") -> str:
    """deploy/mailer.env.example with some values replaced (every one must be in the template), plus extra lines."""
    lines, seen = [], set()
    for line in (DEPLOY / "mailer.env.example").read_text().splitlines():
        key = line.split("=", 1)[0]
        if not line.startswith("#") and "=" in line and key in overrides:
            value = overrides[key]
            line = f'{key}="{value}"' if " " in value else f"{key}={value}"
            seen.add(key)
        lines.append(line)
    assert seen == set(overrides), f"not in deploy/mailer.env.example: {set(overrides) - seen}"
    return "\n".join(lines) + "\n" + extra


def read_env_file(path: Path) -> dict[str, str]:
    """As systemd's EnvironmentFile= reads it: KEY=value, optional double quotes, # comments."""
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";")) and "=" in line:
            key, value = line.split("=", 1)
            values[key.strip()] = value[1:-1] if len(value) >= 2 and value[0] == value[-1] == '"' else value
    return values


def unit_command(unit: str, replacements: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """ExecStart= and Environment= of a unit in deploy/, with paths and %-specifiers replaced."""
    command: list[str] = []
    environment: dict[str, str] = {}
    for line in (DEPLOY / unit).read_text().splitlines():
        for old, new in replacements.items():
            line = line.replace(old, new)
        if line.startswith("ExecStart="):
            command = shlex.split(line.removeprefix("ExecStart="))
        elif line.startswith("Environment="):
            key, value = line.removeprefix("Environment=").split("=", 1)
            environment[key] = value
    assert command, f"{unit} has no ExecStart"
    return command, environment


def clean_environment() -> dict[str, str]:
    """This machine's environment without any mailer or Flask settings of the test run."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("FLASK_", "MAILER_"))}


def nginx_browser(port: int) -> Browser:
    """A browser-ish client for nginx over TLS (a throwaway certificate): keeps cookies itself (they are
    Secure), sends no Referer."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return Browser(port, {"Host": HOST}, tls_context=context, timeout=20)


def assert_page_headers(headers: Any, where: str) -> None:
    csp = headers.get("Content-Security-Policy", "")
    # Pages may not be framed by others; the admin's email preview is framed by the admin's own page.
    assert re.search(r"frame-ancestors '(none|self)'", csp) and re.search(r"default-src '(self|none)'", csp), (
        where,
        csp,
    )
    assert headers.get("X-Content-Type-Options") == "nosniff", where
    # The embeddable join form's own post must carry its Origin (no-referrer sends "Origin: null"), so it alone
    # says same-origin: the referrer still never leaves the site (issue 20, R2).
    expected = "same-origin" if "/join/embed" in where else "no-referrer"
    assert headers.get("Referrer-Policy") == expected, where


def assert_secure_session_cookie(headers: Any, where: str) -> None:
    cookies = [c for c in headers.get_all("Set-Cookie") or [] if c.startswith("session=")]
    assert cookies, f"{where}: no session cookie"
    attributes = {part.strip().split("=")[0].lower() for part in cookies[-1].split(";")[1:]}
    assert {"secure", "httponly"} <= attributes, (where, cookies)
    assert "samesite=lax" in cookies[-1].lower(), (where, cookies)


# --- the production path ----------------------------------------------------------------------------


@pytest.fixture
def stage(tmp_path: Path) -> dict[str, Path]:
    """A scratch server: /srv/mailer (the code as `git clone` leaves it), /etc/mailer, nginx's files."""
    srv = tmp_path / "srv" / "mailer"
    srv.mkdir(parents=True)
    for name in ("wsgi.py", "gunicorn.conf.py", "requirements.txt"):
        shutil.copy2(ROOT / name, srv / name)
    for name in ("mailer", "migrations", "templates", "deploy"):
        shutil.copytree(ROOT / name, srv / name, ignore=shutil.ignore_patterns("__pycache__"))
    (srv / ".venv").symlink_to(ROOT / ".venv")  # `pip install -r requirements.txt` needs the network
    (srv / "instance").mkdir(mode=0o700)
    etc = tmp_path / "etc" / "mailer"
    etc.mkdir(parents=True)
    nginx = tmp_path / "nginx"
    (nginx / "www").mkdir(parents=True)
    return {"srv": srv, "etc": etc, "nginx": nginx}


def test_the_deploy_readme_runs_on_postgresql_with_gunicorn_and_nginx(stage, postgres_database, smtp):
    """Issue 10: deploy/'s settings template, mailerctl, systemd units and nginx config, with the README's
    commands (DKIM key, db upgrade, create-admin, check), give a service that answers over TLS with HSTS,
    Secure cookies and the page headers, takes a join with CSRF but no Referer, records the visitor's own
    address behind the proxy, sends DKIM-signed mail from the worker, and reports the worker in /healthz."""
    assert "gunicorn" in (ROOT / "requirements.txt").read_text()
    for tool in ("openssl", "nginx"):
        if not shutil.which(tool) and not Path(f"/usr/sbin/{tool}").exists():
            skip_or_fail(f"{tool} is not installed")
    srv, etc, ngx = stage["srv"], stage["etc"], stage["nginx"]
    to_stage = {"/etc/mailer": str(etc), "/srv/mailer": str(srv)}

    def shell(command: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
        for old, new in to_stage.items():
            command = command.replace(old, new)
        command = re.sub(r"(?m)^mailerctl ", f"{srv}/deploy/mailerctl ", command)
        env = {**clean_environment(), "MAILER_HOME": str(srv), "MAILER_ENV_FILE": str(etc / "mailer.env"),
               "MAILER_USER": getpass.getuser(), **extra_env}
        return subprocess.run(["bash", "-c", command], env=env, capture_output=True, text=True, timeout=60)

    # 4. DKIM key and the public half for DNS.
    assert shell(documented("openssl genrsa -out /etc/mailer/dkim.key 2048")).returncode == 0
    public = shell(documented("openssl rsa -in /etc/mailer/dkim.key -pubout -outform der | openssl base64 -A"))
    assert public.returncode == 0 and len(public.stdout.strip()) > 300

    # 3. Settings: the template with this machine's database, relay and secrets.
    settings = {
        "FLASK_SECRET_KEY": "production-secret-" + uuid.uuid4().hex,
        "FLASK_MAILER_SUPPRESSION_KEY": "suppression-key-" + uuid.uuid4().hex,
        "FLASK_SQLALCHEMY_DATABASE_URI": postgres_database,
        "FLASK_MAIL_SERVER": smtp.host,
        "FLASK_MAIL_PORT": str(smtp.port),
        "FLASK_MAIL_USE_TLS": "false",
        "FLASK_MAIL_USERNAME": "",
        "FLASK_MAIL_PASSWORD": "",
        "FLASK_MAILER_DKIM_KEY_FILE": str(etc / "dkim.key"),
    }
    # Not the operator's choice: a quick tick, so the test does not wait 5 s for each email.
    (etc / "mailer.env").write_text(env_file_lines(settings, extra="FLASK_MAILER_TICK_SECONDS=0.3\n"))
    (etc / "mailer.env").chmod(0o640)

    # 5. Schema, first admin, check.
    upgraded = shell(documented("mailerctl db upgrade"))
    assert upgraded.returncode == 0, upgraded.stderr
    created = shell(documented(f"mailerctl create-admin {ADMIN[0]}"), MAILER_ADMIN_PASSWORD=ADMIN[1])
    assert created.returncode == 0, created.stderr
    assert f"https://{HOST}/admin/login" in created.stdout
    checked = shell(documented("mailerctl check"))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    lines = checked.stdout.strip().splitlines()
    assert lines and all(line.startswith("OK ") for line in lines), checked.stdout
    assert any("DKIM signs as mailer1._domainkey.example.org" in line for line in lines), checked.stdout

    # 6. Services, from the unit files; 7. nginx, from the example.
    environment = {**clean_environment(), **read_env_file(etc / "mailer.env"), "PYTHONUNBUFFERED": "1"}
    web_port, https_port, http_port = free_port(), free_port(), free_port()
    web_cmd, _ = unit_command(
        "mailer-web.service", {"/srv/mailer": str(srv), "127.0.0.1:8000": f"127.0.0.1:{web_port}"}
    )
    worker_cmd, worker_env = unit_command("mailer-worker@.service",
                                          {"/srv/mailer": str(srv), "%H": socket.gethostname(), "%i": "1"})
    assert "--workers" in web_cmd and web_cmd[web_cmd.index("--workers") + 1] != "1"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={HOST}",
                    "-keyout", str(ngx / "key.pem"), "-out", str(ngx / "cert.pem")], check=True, capture_output=True)
    site = (DEPLOY / "nginx-mailer.conf").read_text()
    for old, new in {
        "listen 80;": f"listen 127.0.0.1:{http_port};", "listen 443 ssl;": f"listen 127.0.0.1:{https_port} ssl;",
        f"/etc/letsencrypt/live/{HOST}/fullchain.pem": str(ngx / "cert.pem"),
        f"/etc/letsencrypt/live/{HOST}/privkey.pem": str(ngx / "key.pem"),
        "/var/log/nginx/mailer.access.log": str(ngx / "access.log"), "/var/www/html": str(ngx / "www"),
        "127.0.0.1:8000": f"127.0.0.1:{web_port}",
    }.items():
        assert old in site, old
        site = site.replace(old, new)
    site = "\n".join(line for line in site.splitlines() if "listen [::]" not in line)
    temp = "".join(f"{kind}_temp_path {ngx / kind};\n" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    (ngx / "nginx.conf").write_text(
        ("user root;\n" if os.geteuid() == 0 else "")
        + f"worker_processes 1;\npid {ngx / 'nginx.pid'};\nerror_log {ngx / 'error.log'};\nevents {{}}\n"
        + f"http {{\n{temp}{site}\n}}\n"
    )
    nginx_bin = shutil.which("nginx") or "/usr/sbin/nginx"
    syntax = subprocess.run(
        [nginx_bin, "-t", "-p", str(ngx), "-c", str(ngx / "nginx.conf")], capture_output=True, text=True
    )
    assert syntax.returncode == 0, syntax.stderr

    processes: list[subprocess.Popen[bytes]] = []
    logs = {name: (ngx.parent / f"{name}.log") for name in ("web", "worker", "nginx")}

    def start(name: str, command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        with logs[name].open("wb") as log:
            process = subprocess.Popen(command, cwd=srv, env=env, stdout=log, stderr=subprocess.STDOUT,
                                       start_new_session=True)
        processes.append(process)
        return process

    try:
        web = start("web", web_cmd, environment)
        worker = start("worker", worker_cmd, {**environment, **worker_env})
        nginx = start("nginx", [nginx_bin, "-p", str(ngx), "-c", str(ngx / "nginx.conf"), "-g", "daemon off;"],
                      clean_environment())
        wait_until(lambda: answers(web_port), "gunicorn to listen", process=web)
        wait_until(lambda: answers(https_port), "nginx to listen", process=nginx)
        browser = nginx_browser(https_port)

        status, headers, _ = browser.request("GET", "/")
        assert status == 200
        assert headers["Strict-Transport-Security"].startswith("max-age=")
        assert re.fullmatch(r"[0-9a-f]{32}", headers["X-Request-ID"])  # nginx's $request_id, kept by the app
        assert_page_headers(headers, "/")
        status, headers, page = browser.request("GET", "/join")
        assert status == 200
        assert_page_headers(headers, "/join")
        assert_secure_session_cookie(headers, "/join")

        form = {"csrf_token": csrf_token(page), "name": "Zoe Parent", "email": "zoe@example.net",
                "social_media": "no", "groups": "1", "consent": "y"}
        status, headers, body = browser.request("POST", "/join", form, {"X-Forwarded-For": "198.51.100.7"})
        assert status == 303, body[:2000]
        assert headers["Location"].endswith("/join/check-your-email")

        (confirmation,) = smtp.wait_for(1, timeout=30)
        assert confirmation.rcpt_tos == ["zoe@example.net"]
        assert confirmation.raw.startswith(b"DKIM-Signature:")
        dns = {b"mailer1._domainkey.example.org.": f"v=DKIM1; k=rsa; p={public.stdout.strip()}".encode()}
        assert dkim.verify(confirmation.raw, dnsfunc=lambda name, timeout=5: dns.get(name)), "DKIM signature"
        confirm_url = link_to(confirmation.message, "/confirm/")
        assert confirm_url.startswith(f"https://{HOST}/confirm/")
        confirm_path = urlsplit(confirm_url).path
        status, headers, page = browser.request("GET", confirm_path)
        assert status == 200 and headers["Cache-Control"] == "no-store"
        status, _, page = browser.request("POST", confirm_path, {"csrf_token": csrf_token(page)})
        assert status == 200, page[:2000]
        welcome = smtp.wait_for(2, timeout=30)[1]
        assert welcome.rcpt_tos == ["zoe@example.net"]

        status, _, page = browser.request("GET", "/admin/login")
        status, headers, _ = browser.request("POST", "/admin/login", {
            "csrf_token": csrf_token(page), "email": ADMIN[0], "password": ADMIN[1]})
        assert status == 303, "the admin made by create-admin logs in"
        assert_secure_session_cookie(headers, "admin login")

        def healthy() -> dict[str, Any] | None:
            status, _, body = browser.request("GET", "/healthz")
            assert status == 200
            report = json.loads(body)
            return report if report["outbox"]["pending"] == 0 and report["worker"]["recent_workers"] else None

        report = wait_until(healthy, "the outbox to drain")
        assert report["status"] == "ok" and report["worker"]["seconds_since_last_tick"] < 60

        engine = create_engine(postgres_database)
        try:
            with engine.connect() as conn:
                ips = set(conn.scalars(select(ConsentEvent.ip_address)))
                worker_ids = set(conn.scalars(select(WorkerHeartbeat.worker_id)))
        finally:
            engine.dispose()
        assert ips == {"127.0.0.1"}, "the visitor's own address, not the forged X-Forwarded-For"
        assert worker_ids == {f"{socket.gethostname()}-1"}

        assert "/confirm/[token]" in (ngx / "access.log").read_text()
        assert confirm_path.rsplit("/", 1)[1] not in (ngx / "access.log").read_text()

        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0, logs["worker"].read_text()[-3000:]
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
    web_log = logs["web"].read_text()
    assert "Traceback" not in web_log, web_log[-3000:]
    assert "zoe@example.net" not in web_log + logs["worker"].read_text()


# --- several machines ----------------------------------------------------------------------------


def test_two_workers_with_their_own_ids_and_the_web_app_share_one_postgresql(database_factory, smtp, tmp_path):
    """S7/issue 10: two worker processes (as on two machines) and the web app on one PostgreSQL: every
    confirmation goes out exactly once, each row names the worker that sent it, /healthz sees both."""
    if not POSTGRES_URL:
        skip_or_fail("TEST_POSTGRES_URL is not set")
    uri, name = database_factory.postgres()
    app = create_app(base_config(uri, smtp))
    app.extensions["mailer.clock"] = SystemClock()
    ids = ["machine-a-1", "machine-b-1"]
    smtp.slow_down(0.02)  # sending takes time, as it does over a real relay, so both get a share
    workers = [WorkerProcess(uri, smtp, tmp_path / f"{wid}.log", MAILER_WORKER_ID=wid, MAILER_BATCH_SIZE=2)
               for wid in ids]
    try:
        client = app.test_client()

        def both_ticked() -> bool:
            report = client.get("/healthz").get_json()
            return report["worker"] is not None and report["worker"]["recent_workers"] == 2

        wait_until(both_ticked, "both workers to tick")
        addresses = [f"parent{i:02d}@example.org" for i in range(24)]
        for address in addresses:
            assert join(client, email=address).status_code == 303
        received = smtp.wait_for(len(addresses), timeout=30)
        wait_until(lambda: client.get("/healthz").get_json()["outbox"]["pending"] == 0, "the outbox to drain")
        time.sleep(0.5)  # nothing more may arrive: a duplicate would show up now
        assert sorted(r.rcpt_tos[0] for r in smtp.received) == addresses, "each exactly once"
        assert len(received) == len(addresses)
        with app.app_context():
            claims = list(db.session.scalars(
                select(OutboxMessage.claimed_by).where(OutboxMessage.state == OutboxState.SENT)
            ))
            beats = set(db.session.scalars(select(WorkerHeartbeat.worker_id)))
        senders = {claim.split(":", 1)[0] for claim in claims if claim}  # "<worker id>:<claim>"
        assert len(claims) == len(addresses) and senders <= set(ids), claims
        assert beats == set(ids)
        report = client.get("/healthz").get_json()
        assert report["worker"]["recent_workers"] == 2 and report["outbox"]["overdue_seconds"] == 0
    finally:
        codes = [worker.stop() for worker in workers]
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
        database_factory.drop_postgres(name)
    assert codes == [0, 0], [w.log()[-2000:] for w in workers]


def test_healthz_reports_the_backlog_and_a_silent_worker(app, clock):
    """A monitor can alert: pending mail, how long it has waited past its time, and when a worker last ticked."""
    from datetime import timedelta

    from mailer.models import MailKind
    from mailer.worker.heartbeat import record_tick

    client = app.test_client()
    report = client.get("/healthz").get_json()
    assert report["worker"] == {"last_tick_at": None, "seconds_since_last_tick": None, "recent_workers": 0}
    assert report["outbox"] == {"pending": 0, "oldest_pending_age_seconds": None, "overdue_seconds": 0.0}
    with app.app_context():
        member_id = add_member("late@example.org", clock=clock)
        old = clock.now()
        db.session.add(OutboxMessage(kind=MailKind.WELCOME, member_id=member_id, created_at=old, next_attempt_at=old))
        db.session.commit()
        with db.engine.begin() as connection:
            record_tick(connection, "w-1", now=old)
    clock.advance(minutes=10)
    report = client.get("/healthz").get_json()
    assert report["status"] == "ok"
    assert report["worker"]["seconds_since_last_tick"] == 600.0 and report["worker"]["recent_workers"] == 0
    assert report["outbox"] == {"pending": 1, "oldest_pending_age_seconds": 600.0, "overdue_seconds": 600.0}
    assert report["worker"]["last_tick_at"] == old.isoformat()
    assert timedelta(seconds=600) == clock.now() - old


# --- backups -----------------------------------------------------------------------------------------


def test_sqlite_backup_restores_into_a_working_app(sqlite_uri, clock, tmp_path):
    """Issue 10: `backup` copies the live database (WAL and all) while the app holds data; the copy,
    put in place as the README says, runs a new app with every member there."""
    app = create_app(base_config(sqlite_uri))
    app.extensions["mailer.clock"] = clock
    add_members(app, clock, 40)
    client = app.test_client()
    join(client, email="after@example.org")  # uncommitted pages, open connections: the app is live
    process_join_requests_for_app(app)
    output = tmp_path / "backups" / "nightly.db"
    result = app.test_cli_runner().invoke(args=["backup", "--output", str(output)])
    assert result.exit_code == 0, result.output
    assert "41 members" in result.output
    assert output.stat().st_mode & 0o777 == 0o600, "members' data: owner only"
    again = app.test_cli_runner().invoke(args=["backup", "--output", str(output)])
    assert again.exit_code != 0 and "already exists" in again.output
    with app.app_context():
        db.engine.dispose()

    restored = tmp_path / "restored" / "mailer.db"
    restored.parent.mkdir()
    shutil.copyfile(output, restored)  # cp backup instance/mailer.db
    new_app = create_app(base_config(f"sqlite:///{restored}"))
    try:
        assert new_app.test_client().get("/join").status_code == 200
        assert new_app.test_client().get("/healthz").status_code == 200
        with new_app.app_context():
            emails = set(db.session.scalars(select(Member.email)))
            assert len(emails) == 41 and "after@example.org" in emails
    finally:
        with new_app.app_context():
            db.engine.dispose()


def test_postgresql_backup_prints_a_pg_dump_command_that_restores(database_factory, clock, tmp_path):
    """Issue 10: on PostgreSQL `backup` prints the pg_dump command (exit 0); run as printed, it makes a
    dump that pg_restore loads into a new database the app runs on."""
    if not POSTGRES_URL:
        skip_or_fail("TEST_POSTGRES_URL is not set")
    if not shutil.which("pg_dump"):
        skip_or_fail("pg_dump is not installed")
    uri, name = database_factory.postgres()
    restored_name = f"restored_{uuid.uuid4().hex[:8]}"
    app = create_app(base_config(uri))
    try:
        add_members(app, clock, 5)
        dump = tmp_path / "mailer.dump"
        result = app.test_cli_runner().invoke(args=["backup", "--output", str(dump)])
        assert result.exit_code == 0, result.output
        command = next(line.strip() for line in result.output.splitlines() if line.strip().startswith("pg_dump "))
        assert "postgres@" not in command and "password" not in command.lower()
        ran = subprocess.run(shlex.split(command), capture_output=True, text=True, timeout=60)
        assert ran.returncode == 0, ran.stderr
        url = make_url(uri)
        admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{restored_name}"'))
        admin.dispose()
        restore = subprocess.run(
            ["pg_restore", "--no-owner", f"--host={url.host}", f"--port={url.port}", f"--username={url.username}",
             f"--dbname={restored_name}", str(dump)], capture_output=True, text=True, timeout=60)
        assert restore.returncode == 0, restore.stderr
        restored_app = create_app(base_config(url.set(database=restored_name).render_as_string(hide_password=False)))
        try:
            assert restored_app.test_client().get("/join").status_code == 200
            with restored_app.app_context():
                assert db.session.scalar(select(func.count()).select_from(Member)) == 5
        finally:
            with restored_app.app_context():
                db.engine.dispose()
    finally:
        with app.app_context():
            db.engine.dispose()
        database_factory.drop_postgres(name)
        database_factory.drop_postgres(restored_name)


# --- headers, cookies, proxies --------------------------------------------------------------------------


def sample_arguments(app: Any, clock: Any) -> dict[str, Any]:
    """One real value per URL variable, so every GET page renders as a visitor would see it."""
    with app.app_context():
        member_id = add_member("headers@example.org", clock=clock)
        item = create_announcement(db.session, AnnouncementDraft(subject="Hello", body_markdown="# Hi"),
                                   admin_id=None, clock=clock)
        db.session.commit()
        announcement_id = item.id
    secret = app.config["SECRET_KEY"]
    return {
        "member_id": member_id,
        "announcement_id": announcement_id,
        "import_id": "0" * 32,
        "filename": "site.css",
        "confirm": make_token(secret, Purpose.CONFIRM, link_key_of(app, member_id), 1, clock=clock),
        "unsubscribe": make_token(secret, Purpose.UNSUBSCRIBE, link_key_of(app, member_id), 1, clock=clock),
        "preferences": make_token(secret, Purpose.PREFERENCES, link_key_of(app, member_id), 1, clock=clock),
        "admin": "not-a-real-token",  # /admin/invitation/<token> and the other emailed admin links: a 410 page
        "archive": "not-a-real-token",  # /archive/view/<token>, the web view of an announcement: a 404 page
        "change-address": "not-a-real-token",  # a new address's confirm link: the page for a bad link
    }


def test_every_get_page_sends_the_security_headers(sqlite_uri, clock):
    """Security: CSP (with frame-ancestors), Referrer-Policy and X-Content-Type-Options on every GET route
    of the url_map, for a visitor and for a logged-in admin; token pages are also no-store."""
    app = create_app(base_config(sqlite_uri))
    app.extensions["mailer.clock"] = clock
    values = sample_arguments(app, clock)
    admin = logged_in_admin(app, clock)
    visitor = app.test_client()
    checked = []
    for rule in app.url_map.iter_rules():
        if "GET" not in (rule.methods or ()):
            continue
        args: dict[str, Any] = {}
        for argument in rule.arguments:
            if argument == "token":
                args[argument] = values[rule.rule.split("/")[1]]
            elif argument in values:
                args[argument] = values[argument]
            else:  # a route added later: any value of the right kind (a 404 page must have the headers too)
                converter = rule._converters[argument]
                items = sorted(getattr(converter, "items", ()))
                args[argument] = items[0] if items else 1 if isinstance(converter, IntegerConverter) else "sample"
        with app.test_request_context():
            from flask import url_for

            path = url_for(rule.endpoint, **args)
        for who, client in (("visitor", visitor), ("admin", admin)):
            response = client.get(path)
            assert response.status_code < 500, (who, path, response.status_code)
            assert_page_headers(response.headers, f"{who} {path}")
            if "token" in rule.arguments:
                assert response.headers["Cache-Control"] == "no-store", path
            checked.append((who, path, response.status_code))
            response.close()  # a streamed download (the export) keeps its app context, and its admin, until closed
    assert len(checked) >= 2 * 25, checked
    assert ("admin", f"/admin/members/{values['member_id']}", 200) in checked


def test_production_cookies_are_secure(sqlite_uri, clock):
    """Security: in production the session cookie is Secure, HttpOnly and SameSite=Lax, also after login."""
    app = create_app({**base_config(sqlite_uri), "MAILER_ENV": "production", "SECRET_KEY": "p" * 48})
    app.extensions["mailer.clock"] = clock
    client = app.test_client()
    assert_secure_session_cookie(client.get("/join").headers, "/join")
    admin = logged_in_admin(app, clock)  # logs in through the form
    response = admin.get("/admin/")
    assert response.status_code == 200


@pytest.mark.parametrize("proxies", [0, 1])
def test_rate_limits_see_the_visitor_behind_the_proxy_only_when_told(sqlite_uri, proxies):
    """Behind nginx (MAILER_PROXY_FIX_X_FOR=1) each visitor has their own join limit; without it every
    request comes from the proxy's address and shares one (the reason the setting exists)."""
    app = create_app({**base_config(sqlite_uri), "RATELIMIT_ENABLED": True, "MAILER_JOIN_RATE_LIMIT": "2 per hour",
                      "MAILER_PROXY_FIX_X_FOR": proxies, "MAILER_PROXY_FIX_X_PROTO": proxies})
    statuses = {}
    for visitor in ("203.0.113.1", "203.0.113.2"):
        client = app.test_client()
        codes = []
        headers = {"X-Forwarded-For": visitor, "X-Forwarded-Proto": "https"}  # as nginx sends them
        for i in range(3):
            page = client.get("/join", headers=headers).get_data(as_text=True)
            response = client.post("/join", headers=headers, data={
                "csrf_token": csrf_token(page), "name": "Visitor", "social_media": "no", "groups": ["1"],
                "consent": "y", "email": f"v{i}-{visitor.replace('.', '-')}@example.org"})
            codes.append(response.status_code)
        statuses[visitor] = codes
    process_join_requests_for_app(app)
    with app.app_context():
        stored = set(db.session.scalars(select(ConsentEvent.ip_address)))
        db.engine.dispose()
    if proxies:
        assert statuses == {"203.0.113.1": [303, 303, 429], "203.0.113.2": [303, 303, 429]}
        assert stored == {"203.0.113.1", "203.0.113.2"}, "consent evidence records the visitor's address"
    else:
        assert statuses == {"203.0.113.1": [303, 303, 429], "203.0.113.2": [429, 429, 429]}
        assert stored == {"127.0.0.1"}


# --- a refused start under gunicorn (issue 15.8) -------------------------------------------------------

GUNICORN_WORKERS = 2


@pytest.mark.parametrize("keys", [
    {},
    {"SECRET_KEY": "k" * 20},
    {"SECRET_KEY": "k" * 40, "MAILER_SUPPRESSION_KEY": "s" * 20},
], ids=["no-key", "20-character-key", "20-character-suppression-key"])
def test_gunicorn_in_production_with_a_weak_key_stops_at_once_with_one_line(tmp_path, keys):
    """Issue 15.8: gunicorn with MAILER_ENV=production and no key, or a key of 20 characters, stops by itself
    within seconds with code 3 (gunicorn.conf.py checks in the master, before it listens or forks): one line
    naming the key, no traceback, no worker started, nothing listening. Run several times, since the old
    per-worker refusal raced (two workers failing together made gunicorn exit 1 with a traceback)."""
    key = "MAILER_SUPPRESSION_KEY" if "MAILER_SUPPRESSION_KEY" in keys else "SECRET_KEY"
    for _ in range(3):
        started = time.monotonic()
        server = Gunicorn(tmp_path, workers=GUNICORN_WORKERS, wait=False, MAILER_ENV="production",
                          SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'mailer.db'}", **keys)
        try:
            code = server.wait_for_exit(timeout=30)
            took = time.monotonic() - started
        finally:
            server.stop()
        output = server.log()
        assert code == 3, output  # EXIT_REFUSED_TO_START, from the master
        assert took < 20, f"gunicorn took {took:.1f} s to stop:\n{output}"
        refusals = [line for line in output.splitlines() if "refusing to start" in line]
        assert len(refusals) == 1, output
        assert refusals[0].startswith(f"mailer: refusing to start: MAILER_ENV is production but {key} is ")
        assert f"FLASK_{key}" in refusals[0] and "32" in refusals[0]
        assert "Traceback" not in output, output
        assert server.worker_pids() == set() and "Listening at" not in output, output
        assert not server.listening()


def test_gunicorn_in_production_starts_with_a_40_character_key(tmp_path):
    """The same command with a 40-character key (and suppression key) serves: the refusal is about the key alone."""
    server = Gunicorn(tmp_path, workers=GUNICORN_WORKERS, MAILER_ENV="production",
                      SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'mailer.db'}",
                      SECRET_KEY="k" * 40, MAILER_SUPPRESSION_KEY="s" * 40)
    try:
        assert server.wait_for_exit(timeout=2) is None and server.listening()
        assert len(server.worker_pids()) == GUNICORN_WORKERS
    finally:
        assert server.stop() == 0
    assert "refusing to start" not in server.log()


@pytest.mark.parametrize("unit", ["mailer-web.service", "mailer-worker@.service"])
def test_the_systemd_units_leave_a_refused_start_stopped_and_create_files_owner_only(unit):
    """Issue 15.8 and 15.13: systemd does not restart a service that exited with the refused-start code (3),
    and the service's umask makes every file it creates (SQLite database, imports, backups) owner-only."""
    lines = (DEPLOY / unit).read_text().splitlines()
    assert "Restart=on-failure" in lines
    assert "RestartPreventExitStatus=3" in lines
    assert "UMask=0077" in lines
