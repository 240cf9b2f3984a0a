"""Keep email addresses and link tokens out of logs (UK GDPR: logs are copied, kept and shared).

Our own log lines name members by id or by a short keyed hash. Text we do not control
(SMTP replies quote the recipient, request lines carry token paths) goes through redact()."""

from __future__ import annotations

import logging
import re

from mailer.members.addresses import address_hash

# Local part and domain loosely: over-redacting a log line costs nothing, missing an address does.
_ADDRESS = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
# The secret part of a signed link: /confirm/<token>, /unsubscribe/<token>, /preferences/<token>, and the
# admin links (V4): /admin/invitation/<token>, /admin/reset-password/<token>, /admin/confirm-email/<token>.
_TOKEN_PATH = re.compile(
    r"/(confirm|unsubscribe|preferences|invitation|reset-password|confirm-email)/(?!link-sent\b)[A-Za-z0-9_.~%=-]{8,}"
)

# PostgreSQL's error details quote the row or key values ("Failing row contains (1, Zoë, ...)",
# "Key (email_key)=(zoe@...) already exists"): a member's name and address. The engine already logs
# statements without their parameters (hide_parameters); these are the server's own words.
_ROW_VALUES = re.compile(r"(Failing row contains |Key \((?:[^()\n]|\([^()\n]*\))*\)=)\(.*\)")

ADDRESS_MARK = "[address]"
TOKEN_MARK = "[token]"
VALUES_MARK = "[values]"


def redact(text: str) -> str:
    """The text with anything like an email address, a token path or a database row's values replaced by a marker."""
    text = _TOKEN_PATH.sub(lambda m: f"/{m.group(1)}/{TOKEN_MARK}", text)
    text = _ROW_VALUES.sub(lambda m: f"{m.group(1)}({VALUES_MARK})", text)
    return _ADDRESS.sub(ADDRESS_MARK, text)


def short_hash(key: bytes, email_key: str) -> str:
    """Names one address in a log line without revealing it: 12 hex chars of its keyed hash (C3)."""
    return address_hash(key, email_key)[:12]


def address_tag(raw: str, *, key: bytes) -> str:
    """short_hash of an address as typed (trimmed, lower case), for lines about input that may be invalid."""
    return short_hash(key, (raw or "").strip().lower())


class RedactFilter(logging.Filter):
    """Rewrites a record's message with redact() (its arguments are merged in first).

    On a handler it covers every logger that reaches the handler; on a logger (werkzeug's)
    it covers that logger's records before any handler sees them."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string is logging's problem, not ours
            return True
        cleaned = redact(message)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True
