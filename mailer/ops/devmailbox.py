"""Local development mailbox: a loopback SMTP server that keeps what it receives.

It exists so that a newcomer can run the whole service without a mail account:
the app sends to 127.0.0.1:1025, the messages land as ``.eml`` files in a
directory, and a small separate web viewer (http://127.0.0.1:8025/) shows them
with clickable links. It deliberately imports nothing from the main app, so it
can run on its own: ``python -m mailer.ops.devmailbox``.
"""

from __future__ import annotations

import argparse
import builtins
import json
import logging
import re
import signal
import sys
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from types import FrameType
from typing import Any

from aiosmtpd.controller import Controller
from flask import Flask, Response, abort, redirect, render_template, request, url_for
from markupsafe import Markup, escape
from werkzeug.exceptions import HTTPException
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Response as WerkzeugResponse

from mailer.uploads import open_private

DEFAULT_DIRECTORY = Path("instance/mailbox")
TEMPLATE_FOLDER = Path(__file__).resolve().parent.parent.parent / "templates"
SMTP_SERVER_HOSTNAME = "mailbox.local"

log = logging.getLogger(__name__)

# Ids are the zero-padded counter in the file name; anything else is refused
# before it gets near the file system.
_MESSAGE_ID = re.compile(r"\d{6,}")


@dataclass(frozen=True)
class MessageSummary:
    """What the list page needs about one message."""

    id: str
    sender: str
    to: str
    subject: str
    date: str


class MailboxStore:
    """Keeps each received message as ``NNNNNN.eml`` (bytes exactly as received).

    The envelope (MAIL FROM, RCPT TO, time received) goes into a sidecar
    ``NNNNNN.json`` so that the ``.eml`` stays byte-identical to what was sent,
    which matters when checking DKIM signatures or line endings.
    """

    def __init__(self, directory: Path | str = DEFAULT_DIRECTORY) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._lock = threading.Lock()
        self._last_number = max((int(n) for n in self._stored_ids()), default=0)

    def add(
        self,
        raw: bytes,
        mail_from: str | None = None,
        rcpt_tos: Iterable[str] | None = None,
    ) -> str:
        """Store one message and return its id; safe to call from any thread."""
        envelope = {
            "mail_from": mail_from,
            "rcpt_tos": list(rcpt_tos or []),
            "received_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        with self._lock:
            self._last_number += 1
            while self._eml_path(f"{self._last_number:06d}").exists():
                self._last_number += 1
            message_id = f"{self._last_number:06d}"
            with open_private(self._sidecar_path(message_id), "w", encoding="utf-8") as sidecar:
                sidecar.write(json.dumps(envelope))
            # Write then rename, so a reader never sees half a message.
            partial = self.directory / f"{message_id}.eml.partial"
            with open_private(partial, "wb") as out:
                out.write(raw)
            partial.replace(self._eml_path(message_id))
        return message_id

    def list(self) -> builtins.list[MessageSummary]:
        """Summaries of all stored messages, newest first."""
        summaries = []
        for message_id in sorted(self._stored_ids(), key=int, reverse=True):
            try:
                message = self.get(message_id)
            except KeyError:  # cleared while we were listing
                continue
            summaries.append(
                MessageSummary(
                    id=message_id,
                    sender=_header(message, "From"),
                    to=_header(message, "To")
                    or ", ".join(self.envelope(message_id).get("rcpt_tos", [])),
                    subject=_header(message, "Subject"),
                    date=_header(message, "Date"),
                )
            )
        return summaries

    def get(self, message_id: str) -> EmailMessage:
        """The parsed message; ``KeyError`` if there is no such id."""
        message = message_from_bytes(self.raw(message_id), policy=policy.default)
        assert isinstance(message, EmailMessage)
        return message

    def raw(self, message_id: str) -> bytes:
        """The message bytes exactly as received; ``KeyError`` if unknown."""
        try:
            return self._eml_path(message_id).read_bytes()
        except FileNotFoundError:
            raise KeyError(message_id) from None

    def envelope(self, message_id: str) -> dict[str, Any]:
        """MAIL FROM / RCPT TO / received time, or ``{}`` if not recorded."""
        self._eml_path(message_id)  # validates the id
        try:
            envelope: dict[str, Any] = json.loads(self._sidecar_path(message_id).read_text("utf-8"))
            return envelope
        except (FileNotFoundError, ValueError):
            return {}

    def clear(self) -> None:
        """Delete every stored message (ids keep counting up, so old links 404)."""
        with self._lock:
            for pattern in ("*.eml", "*.json", "*.eml.partial"):
                for path in self.directory.glob(pattern):
                    path.unlink(missing_ok=True)

    def _stored_ids(self) -> Iterator[str]:
        for path in self.directory.glob("*.eml"):
            if _MESSAGE_ID.fullmatch(path.stem):
                yield path.stem

    def _eml_path(self, message_id: str) -> Path:
        if not _MESSAGE_ID.fullmatch(message_id):
            raise KeyError(message_id)
        return self.directory / f"{message_id}.eml"

    def _sidecar_path(self, message_id: str) -> Path:
        return self.directory / f"{message_id}.json"


def _header(message: EmailMessage, name: str) -> str:
    value = message.get(name)
    return "" if value is None else str(value)


class StoringHandler:
    """aiosmtpd handler that accepts everything and puts it in a MailboxStore."""

    def __init__(self, store: MailboxStore) -> None:
        self.store = store

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        content = envelope.content
        raw = content.encode("utf-8") if isinstance(content, str) else bytes(content)
        message_id = self.store.add(raw, envelope.mail_from, envelope.rcpt_tos)
        # The viewer shows who it was for; the log names no address (the same rule as everywhere).
        log.info("received %s for %d recipient(s)", message_id, len(envelope.rcpt_tos))
        return "250 Message accepted for delivery"


# ---------------------------------------------------------------------------
# Web viewer

# Runs on already-escaped text, so it must stop at escaped <, >, " and '.
_URL_IN_ESCAPED_TEXT = re.compile(r"https?://(?:(?!&lt;|&gt;|&#34;|&#39;)[^\s<>\"'])+")
_TRAILING_PUNCTUATION = ".,;:!?"
_HEAD_TAG = re.compile(r"<head(?:\s[^>]*)?>", re.IGNORECASE)
_HTML_TAG = re.compile(r"<html(?:\s[^>]*)?>", re.IGNORECASE)
_BASE_TARGET = '<base target="_blank">'

# Served with the HTML part so that, even opened directly, the email's HTML
# runs no scripts; popups stay allowed so its links still open in a new tab.
_HTML_PART_CSP = "sandbox allow-popups allow-popups-to-escape-sandbox"


def linkify(text: str) -> Markup:
    """Escape plain text, then turn the URLs in it into links."""

    def to_link(match: re.Match[str]) -> str:
        url = match.group(0)
        trailing = ""
        while url and (
            url[-1] in _TRAILING_PUNCTUATION or (url[-1] == ")" and "(" not in url)
        ):
            url, trailing = url[:-1], url[-1] + trailing
        return f'<a href="{url}">{url}</a>{trailing}'

    return Markup(_URL_IN_ESCAPED_TEXT.sub(to_link, str(escape(text))))


def add_base_target(html: str) -> str:
    """Make the email's links open outside the viewer's iframe."""
    if head := _HEAD_TAG.search(html):
        return html[: head.end()] + _BASE_TARGET + html[head.end() :]
    if root := _HTML_TAG.search(html):
        return html[: root.end()] + f"<head>{_BASE_TARGET}</head>" + html[root.end() :]
    return _BASE_TARGET + html


def _body_text(message: EmailMessage, subtype: str) -> str | None:
    part = message.get_body(preferencelist=(subtype,))
    if part is None:
        return None
    content = part.get_content()
    return content if isinstance(content, str) else None


def create_viewer_app(store: MailboxStore) -> Flask:
    """A small Flask app, separate from the main one, for reading the mailbox."""
    app = Flask(__name__, template_folder=str(TEMPLATE_FOLDER), static_folder=None)
    app.config["MAILBOX_SMTP_ADDRESS"] = None  # filled in by DevMailbox

    def message_or_404(message_id: str) -> EmailMessage:
        try:
            return store.get(message_id)
        except KeyError:
            abort(404)

    @app.get("/")
    def message_list() -> str:
        auto_refresh = request.args.get("refresh") != "off"
        return render_template(
            "mailbox/list.html",
            messages=store.list(),
            auto_refresh=auto_refresh,
            smtp_address=app.config["MAILBOX_SMTP_ADDRESS"],
        )

    @app.get("/messages/<message_id>")
    def message_detail(message_id: str) -> str:
        message = message_or_404(message_id)
        text = _body_text(message, "plain")
        return render_template(
            "mailbox/message.html",
            message_id=message_id,
            subject=_header(message, "Subject") or "(no subject)",
            headers=[
                (name, _header(message, name))
                for name in ("From", "To", "Cc", "Subject", "Date", "List-Unsubscribe")
                if message.get(name) is not None
            ],
            envelope=store.envelope(message_id),
            text=None if text is None else linkify(text),
            has_html=message.get_body(preferencelist=("html",)) is not None,
        )

    @app.get("/messages/<message_id>/html")
    def message_html(message_id: str) -> Response:
        html = _body_text(message_or_404(message_id), "html")
        if html is None:
            abort(404)
        response = Response(add_base_target(html), mimetype="text/html")
        response.headers["Content-Security-Policy"] = _HTML_PART_CSP
        return response

    @app.get("/messages/<message_id>/raw")
    def message_raw(message_id: str) -> Response:
        try:
            raw = store.raw(message_id)
        except KeyError:
            abort(404)
        return Response(raw.decode("utf-8", errors="replace"), mimetype="text/plain")

    @app.post("/clear")
    def clear() -> WerkzeugResponse:
        store.clear()
        return redirect(url_for("message_list"), code=303)

    @app.get("/favicon.ico")
    def favicon() -> tuple[str, int]:
        return "", 204  # browsers ask on every refresh; keep the log quiet

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> tuple[str, int]:
        return render_template("mailbox/error.html", error=error), error.code or 500

    return app


# ---------------------------------------------------------------------------
# Running it


class _QuietRequestHandler(WSGIRequestHandler):
    """Logs only failed requests: the list page refreshes every few seconds."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        if str(getattr(code, "value", code))[:1] in ("2", "3"):
            return
        super().log_request(code, size)


class DevMailbox:
    """The SMTP server and the web viewer together, each in its own thread."""

    def __init__(
        self,
        store: MailboxStore,
        smtp_host: str = "127.0.0.1",
        smtp_port: int = 1025,
        web_host: str = "127.0.0.1",
        web_port: int = 8025,
    ) -> None:
        self.store = store
        self.smtp_host, self.smtp_port = smtp_host, smtp_port
        self.web_host, self.web_port = web_host, web_port
        self.app = create_viewer_app(store)
        self.app.config["MAILBOX_SMTP_ADDRESS"] = f"{smtp_host}:{smtp_port}"
        self._controller: Controller | None = None
        self._web_server: BaseWSGIServer | None = None
        self._web_thread: threading.Thread | None = None

    @property
    def web_url(self) -> str:
        return f"http://{self.web_host}:{self.web_port}/"

    def start(self) -> None:
        """Bind both ports; raises ``OSError`` (with nothing left running) if busy."""
        controller = Controller(
            StoringHandler(self.store),
            hostname=self.smtp_host,
            port=self.smtp_port,
            server_hostname=SMTP_SERVER_HOSTNAME,
        )
        controller.start()
        try:
            web_server = make_server(
                self.web_host,
                self.web_port,
                self.app,
                threaded=True,
                request_handler=_QuietRequestHandler,
            )
        except BaseException:
            controller.stop()
            raise
        self._controller, self._web_server = controller, web_server
        self._web_thread = threading.Thread(
            target=web_server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="mailbox-web",
            daemon=True,
        )
        self._web_thread.start()

    def stop(self) -> None:
        """Stop serving and release both ports."""
        if self._web_server is not None:
            self._web_server.shutdown()
            self._web_server.server_close()
            self._web_server = None
        if self._web_thread is not None:
            self._web_thread.join()
            self._web_thread = None
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> DevMailbox:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def run_mailbox(
    smtp_host: str = "127.0.0.1",
    smtp_port: int = 1025,
    web_host: str = "127.0.0.1",
    web_port: int = 8025,
    directory: Path | str = DEFAULT_DIRECTORY,
) -> None:
    """Serve SMTP and the viewer until SIGINT or SIGTERM, then stop both."""
    stop_requested = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop_requested.set()

    previous_handlers = {
        signum: signal.signal(signum, request_stop)
        for signum in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        with DevMailbox(
            MailboxStore(directory), smtp_host, smtp_port, web_host, web_port
        ) as mailbox:
            print(
                f"Development mailbox: SMTP on {smtp_host}:{smtp_port}, "
                f"read the mail at {mailbox.web_url} (stored in {directory})",
                flush=True,
            )
            # A timeout keeps the main thread responsive to signals.
            while not stop_requested.wait(0.5):
                pass
    finally:
        for signum, handler in previous_handlers.items():
            signal.signal(signum, handler)


def main(argv: list[str] | None = None) -> int:
    """Entry point for ``python -m mailer.ops.devmailbox``, usable without the main app."""
    parser = argparse.ArgumentParser(
        prog="python -m mailer.ops.devmailbox",
        description="Local SMTP server that stores mail and shows it in a browser.",
    )
    parser.add_argument("--smtp-host", default="127.0.0.1")
    parser.add_argument("--smtp-port", type=int, default=1025)
    parser.add_argument("--web-host", default="127.0.0.1")
    parser.add_argument("--web-port", type=int, default=8025)
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIRECTORY, dest="directory")
    args = parser.parse_args(argv)

    log_handler = logging.StreamHandler(sys.stdout)
    log_handler.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(log_handler)
    log.setLevel(logging.INFO)

    try:
        run_mailbox(
            args.smtp_host, args.smtp_port, args.web_host, args.web_port, args.directory
        )
    except OSError as error:
        print(f"Could not start the development mailbox: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
