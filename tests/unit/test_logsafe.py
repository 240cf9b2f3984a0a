"""Log redaction: no email address or link token survives into a log line."""

from __future__ import annotations

import logging

import pytest

from mailer.logs.redact import RedactFilter, address_tag, redact, short_hash
from mailer.logs.setup import KeyValueFormatter
from mailer.members.addresses import address_hash

TOKEN = "eyJtIjoxLCJ2IjoxfQ.Z3n1bA.kX9_yT-3vQ2mB8rL0pWd4sFh6jK"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("550 5.1.1 <Zoe.Parent+news@Example.org>: Recipient address rejected",
         "550 5.1.1 <[address]>: Recipient address rejected"),
        ("two: a@b.co, c.d@mail.example.org.uk", "two: [address], [address]"),
        (f'"GET /confirm/{TOKEN} HTTP/1.1" 200 -', '"GET /confirm/[token] HTTP/1.1" 200 -'),
        (f"POST /unsubscribe/{TOKEN}", "POST /unsubscribe/[token]"),
        (f"/preferences/{TOKEN}/data.json", "/preferences/[token]/data.json"),
        (f"/confirm/{TOKEN}/new-link", "/confirm/[token]/new-link"),
        ("GET /preferences/link-sent", "GET /preferences/link-sent"),
        (f"GET /admin/invitation/{TOKEN}", "GET /admin/invitation/[token]"),
        (f"POST /admin/reset-password/{TOKEN}", "POST /admin/reset-password/[token]"),
        (f"GET /admin/confirm-email/{TOKEN}", "GET /admin/confirm-email/[token]"),
        ("GET /admin/forgot-password/sent", "GET /admin/forgot-password/sent"),
        ("GET /admin/members/12 status=200", "GET /admin/members/12 status=200"),
        ("tick: outbox: 3 sent, 0 retrying", "tick: outbox: 3 sent, 0 retrying"),
    ],
)
def test_redact_removes_addresses_and_token_paths_and_nothing_else(text, expected):
    """Logging rule: SMTP replies quote recipients and request lines carry tokens; ids and counts stay readable."""
    assert redact(text) == expected


def test_short_hash_names_an_address_without_revealing_it():
    """A line that must name an address uses 12 hex chars of its keyed hash, the same for any spelling."""
    key = b"suppression-key"
    tag = address_tag("  Zoe@Example.org ", key=key)
    assert tag == short_hash(key, "zoe@example.org") == address_hash(key, "zoe@example.org")[:12]
    assert len(tag) == 12 and "zoe" not in tag


def test_redact_filter_cleans_arguments_and_tracebacks_before_formatting():
    """On a handler, the filter sees the merged message and the traceback text, not just the format string."""
    try:
        raise RuntimeError("bounce for zoe@example.org")
    except RuntimeError:
        import sys

        exc_info = sys.exc_info()
    record = logging.LogRecord("mailer.engine", logging.WARNING, __file__, 1, "outbox %d: failed: %s",
                               (7, "550 <zoe@example.org> unknown"), exc_info)
    assert RedactFilter().filter(record) is True
    line = KeyValueFormatter().format(record)
    assert "zoe@example.org" not in line
    assert 'msg="outbox 7: failed: 550 <[address]> unknown"' in line
    assert "bounce for [address]" in line


def test_key_value_lines_are_one_line_and_quote_what_needs_it():
    """Structured logs: key=value pairs, values with spaces or quotes quoted, newlines escaped, extra fields last."""
    record = logging.LogRecord("mailer.access", logging.INFO, __file__, 1, 'say "hi"\nthere', None, None)
    record.kv = {"method": "GET", "path": "/join", "status": 200}  # type: ignore[attr-defined]
    record.request_id = "abc123def456"  # type: ignore[attr-defined]
    line = KeyValueFormatter().format(record)
    assert "\n" not in line
    assert line.startswith("ts=") and " level=info logger=mailer.access request_id=abc123def456 " in line
    assert line.endswith('msg="say \\"hi\\"\\nthere" method=GET path=/join status=200')


@pytest.mark.parametrize(
    ("detail", "expected"),
    [
        (
            "DETAIL:  Failing row contains (1, null, zoe@example.org, Zoë (Mum), member).",
            "DETAIL:  Failing row contains ([values]).",
        ),
        (
            "DETAIL:  Key (email_key)=(zoe@example.org) already exists.",
            "DETAIL:  Key (email_key)=([values]) already exists.",
        ),
        (
            "DETAIL:  Key (lower(name::text))=(zoë) already exists.",
            "DETAIL:  Key (lower(name::text))=([values]) already exists.",
        ),
        (
            "DETAIL:  Process 12 waits for ShareLock on transaction 34.",
            "DETAIL:  Process 12 waits for ShareLock on transaction 34.",
        ),
    ],
)
def test_postgresql_error_details_lose_the_row_values(detail, expected):
    """PostgreSQL quotes a failing row's or key's values in its error detail; the log keeps only the shape."""
    assert redact(detail) == expected
