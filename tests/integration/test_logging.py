"""Logging (issue 10): structured lines with a request id, and no email address or link token at INFO,
from the web app (captured in this process) or from a real worker process (its log file)."""

from __future__ import annotations

import logging
import re
import threading
import urllib.request
from pathlib import Path
from typing import Any
from urllib.error import HTTPError

import pytest
from conftest import base_config
from werkzeug.serving import make_server

from mailer import create_app
from mailer.clock import SystemClock
from mailer.extensions import db
from mailer.logs.redact import address_tag
from mailer.members.addresses import suppression_key
from support.factories import admin_post, compose, logged_in_admin
from support.mail import link_to, parts
from support.processes import WorkerProcess
from support.web import csrf_token, join, path_of, post_button

MEMBER = "Journey.Person@Example.org"
BOUNCER = "bounce.person@example.org"
TOKEN_IN_URL = re.compile(r"/(?:confirm|unsubscribe|preferences)/([A-Za-z0-9_.-]{20,})")


@pytest.fixture
def live_app(sqlite_uri: str, smtp: Any) -> Any:
    """The web app in this process, on the real clock (the worker in the other process runs on it)."""
    app = create_app(base_config(sqlite_uri, smtp))
    app.extensions["mailer.clock"] = SystemClock()
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def tokens_in(*messages: Any) -> set[str]:
    """The link tokens in the emails as a reader sees them (decoded parts and List-Unsubscribe)."""
    found = set()
    for message in messages:
        text, html = parts(message)
        found.update(TOKEN_IN_URL.findall("\n".join([text, html, str(message.get("List-Unsubscribe", ""))])))
    return found


def test_a_full_journey_logs_no_address_and_no_token(live_app, sqlite_uri, smtp, tmp_path, caplog):
    """Join, confirm, an announcement, unsubscribe, plus a refused recipient and a failed admin login:
    the web app's records and the worker's log name nobody by address and contain no link token."""
    caplog.set_level(logging.INFO)
    smtp.reply_to_rcpt(BOUNCER, f"550 5.1.1 <{BOUNCER}>: Recipient address rejected")
    worker = WorkerProcess(sqlite_uri, smtp, tmp_path / "worker.log", MAILER_WORKER_ID="log-test-1")
    try:
        client = live_app.test_client()
        assert join(client, email=MEMBER, name="Journey Person").status_code == 303
        assert join(live_app.test_client(), email=BOUNCER).status_code == 303
        confirmation = smtp.wait_for(1, timeout=20)[0].message
        confirm_path = path_of(link_to(confirmation, "/confirm/"))
        assert client.get(confirm_path).status_code == 200
        assert post_button(client, confirm_path).status_code == 200
        welcome = smtp.wait_for(2, timeout=20)[1].message

        stranger = live_app.test_client()  # a failed login names the address by its hash only
        page = stranger.get("/admin/login").get_data(as_text=True)
        stranger.post("/admin/login", data={"csrf_token": csrf_token(page), "email": MEMBER, "password": "x" * 14})

        admin = logged_in_admin(live_app, SystemClock())
        announcement_id = compose(admin, subject="Survey open", body="# Survey\n\nTell us by Friday.")
        page_path = f"/admin/announcements/{announcement_id}"
        assert admin_post(admin, page_path, f"{page_path}/send-now").status_code == 303
        announcement = smtp.wait_for(3, timeout=20)[2].message
        assert announcement["Subject"] == "Survey open"
        worker.wait_for_log(f"announcement {announcement_id}: sent")

        unsubscribe_path = path_of(link_to(announcement, "/unsubscribe/"))
        preferences_path = path_of(link_to(announcement, "/preferences/"))
        assert client.get(preferences_path).status_code == 200
        assert client.get(unsubscribe_path).status_code == 200
        one_click = live_app.test_client().post(unsubscribe_path, data={"List-Unsubscribe": "One-Click"})
        assert one_click.status_code == 200
        worker.wait_for_log("failed after 1 attempt(s)")
    finally:
        assert worker.stop() == 0, worker.log()[-3000:]

    tokens = tokens_in(confirmation, welcome, announcement)
    assert len(tokens) >= 3, tokens  # confirm, preferences, unsubscribe
    worker_log = worker.log()
    # "mail.log" is aiosmtpd inside the test's SMTP sink, standing in for the relay: not our log.
    web_records = [r for r in caplog.records if not r.name.startswith("mail.log")]
    web_log = "\n".join(f"{r.name} {r.getMessage()} {getattr(r, 'kv', '')}" for r in web_records)
    for name, text in (("web", web_log), ("worker", worker_log)):
        lowered = text.lower()
        for address in (MEMBER, BOUNCER):
            local = address.split("@")[0].lower()
            assert local not in lowered, f"{name} log names {address}:\n{text[-4000:]}"
        for token in tokens:
            assert token not in text and token[:16] not in text, f"{name} log has a token:\n{text[-4000:]}"

    # What the logs do say: the journey is there, structured and traceable.
    access = [r for r in caplog.records if r.name == "mailer.access"]
    assert {"method", "path", "status", "duration_ms"} <= set(access[0].kv)  # type: ignore[attr-defined]
    paths = {r.kv["path"] for r in access}  # type: ignore[attr-defined]
    assert "/confirm/[token]" in paths and "/unsubscribe/[token]" in paths and "/preferences/[token]" in paths
    assert all(re.fullmatch(r"[0-9a-f]{32}", r.request_id) for r in access)  # type: ignore[attr-defined]
    assert "join: new" in worker_log  # the worker carries out the join form post, and says what it did
    key = suppression_key("", base_config("sqlite://")["SECRET_KEY"])
    assert f"admin login failed for address {address_tag(MEMBER, key=key)}" in web_log
    ticks = [line for line in worker_log.splitlines() if "msg=\"tick: " in line]
    assert ticks and all(line.startswith("ts=") and " worker=log-test-1 " in line for line in ticks), worker_log
    assert "[address]" in worker_log  # the 550 reply quoted the bouncer's address; the log shows where


def test_werkzeug_request_lines_show_no_token(live_app, caplog):
    """The development server logs each request line; a token path in it is redacted before any handler."""
    caplog.set_level(logging.INFO)
    server = make_server("127.0.0.1", 0, live_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    token = "eyJtIjoxLCJ2IjoxfQ.Z3n1bA.secretsecretsecret"
    try:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{server.port}/unsubscribe/{token}", timeout=10)
        except HTTPError as exc:  # a token that is not ours: 400, which is fine here
            assert exc.code == 400
    finally:
        server.shutdown()
        thread.join(timeout=10)
    lines = [r.getMessage() for r in caplog.records if r.name == "werkzeug"]
    assert any("GET /unsubscribe/[token]" in line for line in lines), lines
    assert not any("secretsecret" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    ("given", "echoed"),
    [
        ("3f1c9a7e5b2d4c6e8a0b1c2d3e4f5a6b", True),
        ("lb-7:abc.def_12", True),
        ("", False),
        ("short", False),
        ("a b c d e f g h", False),
        ("x" * 65, False),
        ("<script>alert(1)</script>", False),
    ],
)
def test_every_response_carries_a_request_id(live_app, given, echoed):
    """A caller's (nginx's) X-Request-ID is kept when it looks safe, else a new one is made; never echoed raw."""
    headers = {"X-Request-ID": given} if given else {}
    response = live_app.test_client().get("/join", headers=headers)
    request_id = response.headers["X-Request-ID"]
    if echoed:
        assert request_id == given
    else:
        assert re.fullmatch(r"[0-9a-f]{32}", request_id)


def test_worker_log_file_is_structured_from_the_first_line(sqlite_uri, smtp, tmp_path: Path):
    """P2: an operator's journal gets key=value lines from the worker too, each naming the worker."""
    worker = WorkerProcess(sqlite_uri, smtp, tmp_path / "w.log", MAILER_WORKER_ID="structured-1")
    try:
        worker.wait_for_log("worker: started")
    finally:
        assert worker.stop() == 0
    lines = [line for line in worker.log().splitlines() if line.strip()]
    mailer_lines = [line for line in lines if "logger=mailer." in line]
    assert mailer_lines and all(re.match(r"ts=\S+Z level=\w+ logger=\S+ ", line) for line in lines), lines
    assert all("worker=structured-1" in line for line in mailer_lines)
