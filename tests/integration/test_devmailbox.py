"""The development mailbox: real SMTP in, real HTTP out, and the CLI process."""

from __future__ import annotations

import signal
import smtplib
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

import pytest

from mailer.ops.devmailbox import DevMailbox, MailboxStore, linkify

REPO_ROOT = Path(__file__).resolve().parents[2]
CONFIRM_URL = "https://forum.example.org/confirm/abc123?x=1&y=2"
ESCAPED_URL = CONFIRM_URL.replace("&", "&amp;")


def free_port() -> int:
    """A port that was free a moment ago (aiosmtpd's Controller rejects port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class HttpResult:
    status: int
    body: str
    content_type: str
    headers: dict[str, str]
    url: str


def http(url: str, method: str = "GET") -> HttpResult:
    """Fetch over real HTTP, returning error statuses instead of raising."""
    body = b"" if method == "POST" else None
    request = urllib.request.Request(url, method=method, data=body)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return HttpResult(
                response.status,
                response.read().decode("utf-8"),
                response.headers.get("Content-Type", ""),
                dict(response.headers),
                response.url,
            )
    except urllib.error.HTTPError as error:
        return HttpResult(
            error.code,
            error.read().decode("utf-8"),
            error.headers.get("Content-Type", ""),
            dict(error.headers),
            url,
        )


def confirmation_email(subject: str = "Please confirm you want to join") -> EmailMessage:
    """A multipart/alternative message with the same link in both parts."""
    message = EmailMessage()
    message["From"] = "Forum <forum@example.org>"
    message["To"] = "Alice Example <alice@example.org>"
    message["Subject"] = subject
    message["List-Unsubscribe"] = "<https://forum.example.org/unsubscribe/tok>"
    message.set_content(f"Hello Alice,\n\nConfirm here: {CONFIRM_URL}.\n")
    message.add_alternative(
        "<!doctype html><html><head><title>Confirm</title></head><body>"
        f'<p>Hello Alice, <a href="{ESCAPED_URL}">confirm</a>.</p>'
        "</body></html>",
        subtype="html",
    )
    return message


def send(smtp_port: int, message: EmailMessage) -> None:
    with smtplib.SMTP("127.0.0.1", smtp_port, timeout=5) as client:
        client.send_message(message)


@pytest.fixture
def mailbox(tmp_path: Path) -> Iterator[DevMailbox]:
    """The SMTP server and viewer that run_mailbox uses, on free loopback ports."""
    running = DevMailbox(
        MailboxStore(tmp_path / "mailbox"), smtp_port=free_port(), web_port=free_port()
    )
    running.start()
    yield running
    running.stop()


def only_message_id(mailbox: DevMailbox) -> str:
    [summary] = mailbox.store.list()
    return summary.id


def test_sent_messages_are_listed_newest_first(mailbox: DevMailbox) -> None:
    """The list page shows each received subject, newest first, with auto-refresh."""
    send(mailbox.smtp_port, confirmation_email("First message"))
    send(mailbox.smtp_port, confirmation_email("Second message"))

    page = http(mailbox.web_url)

    assert page.status == 200
    assert '<html lang="en-GB">' in page.body
    assert '<meta http-equiv="refresh" content="5">' in page.body
    assert page.body.index("Second message") < page.body.index("First message")
    assert "alice@example.org" in page.body
    assert '<th scope="col">Subject</th>' in page.body
    assert sorted(p.name for p in mailbox.store.directory.glob("*.eml")) == [
        "000001.eml",
        "000002.eml",
    ]


def test_message_page_links_text_part_and_frames_html(mailbox: DevMailbox) -> None:
    """The message page links the URL in the text part and frames the HTML part."""
    send(mailbox.smtp_port, confirmation_email())
    message_id = only_message_id(mailbox)

    page = http(f"{mailbox.web_url}messages/{message_id}")

    assert page.status == 200
    assert "<h1>Please confirm you want to join</h1>" in page.body
    assert "List-Unsubscribe" in page.body
    assert f'<a href="{ESCAPED_URL}">{ESCAPED_URL}</a>.' in page.body
    assert (
        '<iframe sandbox="allow-popups allow-popups-to-escape-sandbox" '
        f'src="/messages/{message_id}/html" title="HTML version of the email">'
    ) in page.body
    assert f'href="/messages/{message_id}/raw"' in page.body
    assert 'http-equiv="refresh"' not in page.body


def test_html_route_makes_links_open_outside(mailbox: DevMailbox) -> None:
    """The HTML route returns the HTML part with <base target="_blank"> in its head."""
    send(mailbox.smtp_port, confirmation_email())
    message_id = only_message_id(mailbox)

    page = http(f"{mailbox.web_url}messages/{message_id}/html")

    assert page.status == 200
    assert page.content_type.startswith("text/html")
    assert '<head><base target="_blank"><title>Confirm</title>' in page.body
    assert f'<a href="{ESCAPED_URL}">confirm</a>' in page.body
    assert page.headers["Content-Security-Policy"].startswith("sandbox")


def test_raw_route_returns_source_as_plain_text(mailbox: DevMailbox) -> None:
    """The raw route returns the message source as text/plain."""
    send(mailbox.smtp_port, confirmation_email())
    message_id = only_message_id(mailbox)

    page = http(f"{mailbox.web_url}messages/{message_id}/raw")

    assert page.status == 200
    assert page.content_type.startswith("text/plain")
    assert "Subject: Please confirm you want to join" in page.body
    assert "Content-Type: multipart/alternative" in page.body


def test_unknown_message_is_404(mailbox: DevMailbox) -> None:
    """Unknown or malformed ids get a 404 page, on every message route."""
    send(mailbox.smtp_port, confirmation_email())

    for path in (
        "messages/999999",
        "messages/999999/html",
        "messages/999999/raw",
        "messages/abc",
        "messages/..%2F..%2Fetc%2Fpasswd",
    ):
        assert http(f"{mailbox.web_url}{path}").status == 404, path
    assert "There is no such message" in http(f"{mailbox.web_url}messages/999999").body


def test_clear_empties_the_mailbox_and_needs_post(mailbox: DevMailbox) -> None:
    """POST /clear deletes every message; GET /clear is refused."""
    send(mailbox.smtp_port, confirmation_email())
    assert http(f"{mailbox.web_url}clear").status == 405

    page = http(f"{mailbox.web_url}clear", method="POST")

    assert page.status == 200  # after the redirect back to the list
    assert page.url == mailbox.web_url
    assert "No messages yet" in page.body
    assert mailbox.store.list() == []
    assert list(mailbox.store.directory.iterdir()) == []
    send(mailbox.smtp_port, confirmation_email("After clearing"))
    assert [s.subject for s in mailbox.store.list()] == ["After clearing"]


def test_linkify_escapes_before_linking() -> None:
    """Plain text is escaped first, so markup in an email cannot inject HTML."""
    text = '<script>x</script> see https://a.example/p?q=1&r=2, "https://b.example/"'

    html = str(linkify(text))

    assert "<script>" not in html
    assert "&lt;script&gt;" in html
    first = "https://a.example/p?q=1&amp;r=2"
    assert f'<a href="{first}">{first}</a>,' in html
    assert '<a href="https://b.example/">https://b.example/</a>&#34;' in html


def wait_for_http(url: str, process: subprocess.Popen[bytes], timeout: float = 10) -> None:
    """Poll until the viewer answers, failing early if the process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "mailbox process exited early"
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not answer within {timeout} s")


def test_cli_receives_mail_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    """`python -m mailer.ops.devmailbox` serves mail, then exits 0 within 10 s of SIGTERM."""
    smtp_port, web_port = free_port(), free_port()
    log_path = tmp_path / "mailbox.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "mailer.ops.devmailbox"),
                *("--smtp-port", str(smtp_port), "--web-port", str(web_port)),
                *("--dir", str(tmp_path / "mailbox")),
            ],
            cwd=REPO_ROOT,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        try:
            web_url = f"http://127.0.0.1:{web_port}/"
            wait_for_http(web_url, process)
            send(smtp_port, confirmation_email("Sent to the CLI mailbox"))

            assert "Sent to the CLI mailbox" in http(web_url).body

            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=10) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    output = log_path.read_text()
    assert f"SMTP on 127.0.0.1:{smtp_port}" in output
    assert web_url in output
