"""Structured logs for the web app and the worker: one key=value line per event, with a request id.

`configure_logging` puts one handler on the root logger (stderr, which systemd sends to the
journal); every line passes RedactFilter, so no address or link token reaches the log even from
code we do not control (SMTP replies, werkzeug's request lines, tracebacks). `install_request_ids`
gives every request an id, logs one access line with the token part of the path removed, and
returns the id in X-Request-ID so a person reporting a problem can quote it."""

from __future__ import annotations

import logging
import re
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, g, has_request_context, request

from mailer.logs.redact import RedactFilter, redact

if TYPE_CHECKING:
    from mailer.settings import Settings

REQUEST_ID_HEADER = "X-Request-ID"
_SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{8,64}")
_BARE = re.compile(r"[^\s\"=\\]+")

access_log = logging.getLogger("mailer.access")

# Fields the worker (or another process) adds to every line, e.g. worker=host:1234.
_process_fields: dict[str, str] = {}


def set_process_fields(**fields: str) -> None:
    _process_fields.update(fields)


class KeyValueFormatter(logging.Formatter):
    """ts=... level=info logger=... request_id=... msg="..." and any fields given as extra={"kv": {...}}."""

    def format(self, record: logging.LogRecord) -> str:
        pairs: list[tuple[str, Any]] = [
            (
                "ts",
                datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            ),
            ("level", record.levelname.lower()),
            ("logger", record.name),
        ]
        request_id = getattr(record, "request_id", None)
        if request_id:
            pairs.append(("request_id", request_id))
        pairs.extend(_process_fields.items())
        pairs.append(("msg", record.getMessage()))
        pairs.extend((getattr(record, "kv", None) or {}).items())
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            pairs.append(("exc", record.exc_text))
        return " ".join(f"{key}={_value(value)}" for key, value in pairs)


def _value(value: Any) -> str:
    text = "" if value is None else str(value)
    if text and _BARE.fullmatch(text):
        return text
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    return f'"{escaped}"'


class RequestIdFilter(logging.Filter):
    """Stamps the current request's id on records logged while a request is handled."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = current_request_id() if has_request_context() else None
        return True


def current_request_id() -> str:
    """This request's id, assigned on first use: a caller's X-Request-ID if it looks safe, else a new one."""
    if "request_id" not in g:
        given = request.headers.get(REQUEST_ID_HEADER, "")
        g.request_id = given if _SAFE_REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
    return str(g.request_id)


_HANDLER_MARK = "_mailer_handler"


def configure_logging(app: Flask, settings: Settings) -> None:
    """Install the root handler unless TESTING (or MAILER_LOG_SETUP says otherwise); always redact werkzeug."""
    _redact_logger(logging.getLogger("werkzeug"))
    wanted = settings.log_setup
    if wanted is None:
        wanted = not app.testing
    if not wanted:
        return
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, _HANDLER_MARK, False)]:
        root.removeHandler(handler)  # a second create_app in one process replaces, never doubles
    handler = logging.StreamHandler(sys.stderr)
    setattr(handler, _HANDLER_MARK, True)
    handler.setFormatter(KeyValueFormatter())
    handler.addFilter(RequestIdFilter())
    handler.addFilter(RedactFilter())
    root.addHandler(handler)
    root.setLevel(settings.log_level)
    # Flask's own handler would print app.logger lines a second time, unredacted.
    from flask.logging import default_handler

    app.logger.removeHandler(default_handler)
    # "Running job ... executed successfully" every few seconds says nothing the tick line does not.
    logging.getLogger("apscheduler.executors.default").setLevel(logging.WARNING)
    logging.getLogger("flufl.bounce").setLevel(logging.WARNING)  # one INFO line per detector per bounce


def _redact_logger(logger: logging.Logger) -> None:
    if not any(isinstance(f, RedactFilter) for f in logger.filters):
        logger.addFilter(RedactFilter())


def install_request_ids(app: Flask) -> None:
    """Every request gets an id (a caller's safe X-Request-ID, else a new one) and one access line."""

    @app.before_request
    def start_request() -> None:
        current_request_id()
        g.request_started = time.perf_counter()

    @app.after_request
    def log_request(response: Response) -> Response:
        # Also when an earlier before_request hook (CSRF, rate limit) ended the request before ours ran.
        request_id = response.headers[REQUEST_ID_HEADER] = current_request_id()
        started = g.get("request_started")
        access_log.info(
            "request",
            extra={"request_id": request_id, "kv": {
                "method": request.method,
                "path": redact(request.path),
                "status": response.status_code,
                "duration_ms": round((time.perf_counter() - started) * 1000, 1) if started else None,
            }},
        )
        return response
