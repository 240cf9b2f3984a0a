"""Bounce parsing (issue 8): VERP tokens, and a corpus of real-shaped DSNs read as permanent, temporary or complaint."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailer.bounces.records import BouncePolicy, parse_bounce
from mailer.bounces.smtp_server import client_key
from mailer.mail.verp import VerpKind, VerpTarget, make_token, read_token, verp_address, verp_key
from mailer.models import BounceKind

CORPUS = Path(__file__).resolve().parent.parent / "data" / "dsn"
KEY = verp_key("test-only-secret")
POLICY = BouncePolicy(bounce_address="bounces@forum.test", verp_key=KEY)
MEMBER = "sam.parent@example.org"


def corpus_message(name: str, kind: VerpKind = VerpKind.DELIVERY, row_id: int = 4242) -> bytes:
    """A corpus file with its placeholders filled: the VERP address it came back to, and the failed member."""
    text = (CORPUS / name).read_text("utf-8")
    text = text.replace("{{VERP}}", verp_address(KEY, POLICY.bounce_address, kind, row_id)).replace("{{RCPT}}", MEMBER)
    return text.replace("\n", "\r\n").encode("utf-8")


def test_verp_token_round_trips_and_names_no_address():
    """A token gives back the kind and id it was made for, and carries nothing else (no address)."""
    token = make_token(KEY, VerpKind.OUTBOX, 17)
    assert read_token(KEY, token) == VerpTarget(VerpKind.OUTBOX, 17)
    assert read_token(KEY, token.upper()) == VerpTarget(VerpKind.OUTBOX, 17), "some relays change the case"
    assert "@" not in token and "example" not in token
    address = verp_address(KEY, "bounces@forum.test", VerpKind.DELIVERY, 5)
    assert address.startswith("bounces+d5-") and address.endswith("@forum.test")


@pytest.mark.parametrize(
    "token",
    [
        "d5-0000000000000000",  # right shape, wrong signature
        "d6-" + make_token(KEY, VerpKind.DELIVERY, 5).split("-")[1],  # another row's signature
        make_token(verp_key("another-secret"), VerpKind.DELIVERY, 5),  # another installation's key
        "d5",
        "x5-" + "a" * 16,
        "d05-" + "a" * 16,
        "",
    ],
)
def test_forged_or_damaged_tokens_are_refused(token):
    """Anything not signed by us for exactly this row names nothing: bounces are never guessed (issue 8)."""
    assert read_token(KEY, token) is None


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("rfc3464_permanent.eml", BounceKind.PERMANENT),
        ("rfc3464_delayed.eml", BounceKind.TEMPORARY),
        ("exim_permanent.eml", BounceKind.PERMANENT),
        ("exim_delayed.eml", BounceKind.TEMPORARY),
        ("postfix_permanent.eml", BounceKind.PERMANENT),
        ("microsoft_permanent.eml", BounceKind.PERMANENT),
        ("gmail_permanent.eml", BounceKind.PERMANENT),
        ("arf_complaint.eml", BounceKind.COMPLAINT),
    ],
)
def test_corpus_maps_to_delivery_and_class(name, kind):
    """Each real-shaped DSN is tied to the delivery its VERP address names, with the right class."""
    parsed = parse_bounce(corpus_message(name), [], POLICY)
    assert parsed.target == VerpTarget(VerpKind.DELIVERY, 4242)
    assert parsed.kind is kind
    assert not parsed.forged_token
    if kind is not BounceKind.COMPLAINT:
        assert MEMBER in parsed.failed
        assert parsed.reason and any(code in parsed.reason for code in ("550", "5.1", "451", "452", "4.")), (
            parsed.reason
        )


def test_envelope_recipient_wins_over_headers():
    """The envelope recipient the bounce came to is read first; the To header is only a fallback."""
    raw = corpus_message("rfc3464_permanent.eml", row_id=1)
    envelope = verp_address(KEY, POLICY.bounce_address, VerpKind.OUTBOX, 99)
    parsed = parse_bounce(raw, [envelope], POLICY)
    assert parsed.target == VerpTarget(VerpKind.OUTBOX, 99)


def test_forged_token_is_marked_and_names_nothing():
    """A DSN addressed to a token we did not sign says so, and names no row."""
    raw = corpus_message("rfc3464_permanent.eml").replace(b"bounces+d4242-", b"bounces+d4243-")
    parsed = parse_bounce(raw, [], POLICY)
    assert parsed.target is None and parsed.forged_token
    assert parsed.kind is BounceKind.PERMANENT


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x00\xff\xfe garbage \r\n\r\n\x80\x81",
        b"Content-Type: multipart/report; report-type=delivery-status; boundary=\"x\"\r\n\r\n--x\r\n"
        b"Content-Type: message/delivery-status\r\n\r\nAction: failed\r\nStatus: 5.1.1\r\n",  # never closed
        b"Content-Type: multipart/mixed\r\n\r\nno boundary at all\r\n",
        b"Content-Type: message/delivery-status\r\n\r\n\r\n\r\n",
        b"Subject: =?utf-8?b?broken\r\nX-Failed-Recipients: <<<@@@>>>\r\n\r\nbody",
    ],
)
def test_malformed_mime_never_raises(raw):
    """Broken messages give a result (maybe "no failure"), never an exception that would stop the worker."""
    parsed = parse_bounce(raw, ["bounces+d1-0000000000000000@forum.test"], POLICY)
    assert parsed.target is None


def test_auto_reply_is_not_a_bounce():
    """An out-of-office reply to the bounce address is matched but counts nothing."""
    raw = (
        f"From: sam.parent@example.org\r\nTo: {verp_address(KEY, POLICY.bounce_address, VerpKind.DELIVERY, 7)}\r\n"
        "Subject: Out of office\r\nAuto-Submitted: auto-replied\r\n\r\nI am away until Monday.\r\n"
    ).encode()
    parsed = parse_bounce(raw, [], POLICY)
    assert parsed.target == VerpTarget(VerpKind.DELIVERY, 7)
    assert parsed.kind is None


def test_the_bounce_port_counts_ipv6_clients_per_64():
    """The per-client limit at the bounce port counts an IPv6 client's /64 as one, so a client cannot take a
    fresh allowance from each of its own addresses; IPv4 (also IPv4-mapped) counts per address."""
    assert client_key(("2001:db8:1:2::1", 25, 0, 0)) == client_key(("2001:db8:1:2:ffff::9", 25, 0, 0))
    assert client_key(("2001:db8:1:2::1", 25, 0, 0)) != client_key(("2001:db8:1:3::1", 25, 0, 0))
    assert client_key(("192.0.2.1", 25)) != client_key(("192.0.2.2", 25))
    assert client_key(("::ffff:192.0.2.1", 25, 0, 0)) == client_key(("192.0.2.1", 25))
    assert client_key(None) == "?"
