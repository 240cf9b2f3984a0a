"""Headers of the mail as received (E2, E4, E8, issue 17 section 3): DKIM over-signing, stable Message-IDs,
short encoded words, List-Id only on list mail."""

from __future__ import annotations

import base64
import email.policy
import re
import subprocess
from email import message_from_bytes
from email.header import decode_header, make_header
from pathlib import Path
from typing import Any

import dkim
import pytest
from sqlalchemy import select, update

from mailer.extensions import db
from mailer.mail.outbox import enqueue_mail
from mailer.models import MailKind, OutboxMessage, OutboxState
from mailer.transaction import transaction
from mailer.worker.runner import run_tick_for_app
from support.factories import add_member, due_announcement

OVERSIGNED = ["From", "To", "Subject", "Date", "Message-ID", "Reply-To", "List-Id", "List-Unsubscribe",
              "List-Unsubscribe-Post", "Cc"]


@pytest.fixture(scope="module")
def dkim_key(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    """A real RSA key made by openssl, and the DNS TXT record that publishes it."""
    key_path = tmp_path_factory.mktemp("dkim") / "dkim.key"
    subprocess.run(["openssl", "genrsa", "-out", str(key_path), "2048"], check=True, capture_output=True)
    public = subprocess.run(
        ["openssl", "rsa", "-in", str(key_path), "-pubout", "-outform", "DER"], check=True, capture_output=True
    ).stdout
    return key_path, b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)


def test_dkim_over_signs_so_any_added_header_breaks_verification(make_app: Any, clock: Any, smtp: Any,
                                                                  dkim_key: tuple[Path, bytes]) -> None:
    """E8: an announcement verifies with dkimpy; one more of any over-signed header, present or not, breaks it."""
    key_path, txt = dkim_key
    app = make_app(MAILER_DKIM_KEY_FILE=str(key_path), MAILER_DKIM_SELECTOR="mail2026")
    with app.app_context():
        add_member("signed@example.org", clock=clock)
    due_announcement(app, clock, subject="Signed")
    run_tick_for_app(app)
    raw = smtp.wait_for(1)[0].raw

    def dns(name: bytes, timeout: int = 5) -> bytes:
        assert name == b"mail2026._domainkey.forum.test."
        return txt

    assert dkim.verify(raw, dnsfunc=dns)
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert b"\r\nCc:" not in head  # absent, and still signed: adding one breaks the signature too
    for name in OVERSIGNED:
        added = f"{name}: <https://attacker.example/>\r\n".encode()
        assert not dkim.verify(added + raw, dnsfunc=dns), f"a {name} added above the signature still verifies"
        signature_end = raw.index(b"\r\n", raw.index(b"DKIM-Signature:"))
        while raw[signature_end + 2:signature_end + 3] in (b" ", b"\t"):
            signature_end = raw.index(b"\r\n", signature_end + 2)
        below = raw[:signature_end + 2] + added + raw[signature_end + 2:]
        assert not dkim.verify(below, dnsfunc=dns), f"a {name} added below the signature still verifies"


def message_id(raw: bytes) -> str:
    return str(message_from_bytes(raw)["Message-ID"])


def test_a_row_sent_again_after_a_crash_has_the_same_message_id(app: Any, clock: Any, smtp: Any) -> None:
    """E8: an outbox row sent, handed back as a crash leaves it, and sent again carries the same Message-ID."""
    with app.app_context():
        first = add_member("first@example.org", clock=clock)
        second = add_member("second@example.org", clock=clock)
        with transaction(db.session):
            for member_id in (first, second):
                enqueue_mail(db.session, MailKind.WELCOME, clock=clock, member_id=member_id)
            db.session.flush()
            rows = [row.id for row in db.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id))]
    run_tick_for_app(app)
    sent_once = {r.rcpt_tos[0]: message_id(r.raw) for r in smtp.wait_for(2)}
    with app.app_context(), transaction(db.session):
        # What a crash between the server's 250 and recording it leaves: the row pending again.
        db.session.execute(update(OutboxMessage).where(OutboxMessage.id == rows[0]).values(state=OutboxState.PENDING))
    run_tick_for_app(app)
    again = smtp.wait_for(3)[2]
    assert again.rcpt_tos == ["first@example.org"]
    assert message_id(again.raw) == sent_once["first@example.org"]
    assert sent_once["first@example.org"] != sent_once["second@example.org"]
    assert sent_once["first@example.org"].endswith("@forum.test>")
    assert "first" not in sent_once["first@example.org"]  # nothing of the address shows


def test_announcement_deliveries_have_stable_distinct_message_ids(app: Any, clock: Any, smtp: Any) -> None:
    """E8: each delivery's Message-ID is derived from its row: distinct per member, with the configured domain."""
    with app.app_context():
        for i in range(3):
            add_member(f"m{i}@example.org", clock=clock)
    due_announcement(app, clock, subject="Ids")
    run_tick_for_app(app)
    ids = [message_id(r.raw) for r in smtp.wait_for(3)]
    assert len(set(ids)) == 3 and all(i.startswith("<delivery.") and i.endswith("@forum.test>") for i in ids)


ENCODED_WORD = re.compile(rb"=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=")


def encoded_words(raw: bytes) -> list[bytes]:
    return ENCODED_WORD.findall(raw.split(b"\r\n\r\n", 1)[0])


@pytest.mark.parametrize("name", ["Zoë Ångström-Łukasiewicz", "Siobhán Ní Bhriain " * 4, "李小龍 " * 10, "Jo"])
def test_encoded_words_are_at_most_75_characters(make_app: Any, clock: Any, smtp: Any, name: str) -> None:
    """E8: a long non-ASCII personalised subject, name and forum name use encoded words of at most 75 characters."""
    app = make_app(MAILER_FORUM_NAME="Fórum des parents et aidants – Île-de-France et au-delà",
                   MAIL_DEFAULT_SENDER="Fórum des parents et aidants – Île-de-France <noreply@forum.test>")
    with app.app_context():
        add_member("zoe@example.org", clock=clock, name=name)
    subject = "Réunion d’information pour {{ name }} : l’école, les aides et les séjours d’été à venir"
    due_announcement(app, clock, subject=subject)
    run_tick_for_app(app)
    raw = smtp.wait_for(1)[0].raw
    words = encoded_words(raw)
    assert words, "the subject was expected to need encoded words"
    assert max(len(word) for word in words) <= 75, max(words, key=len)
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
    message = message_from_bytes(raw, policy=email.policy.default)
    assert str(message["Subject"]) == subject.replace("{{ name }}", name.strip())
    # RFC 2047 decoding (email.policy.default's address parser puts a space between two encoded words
    # that split a word in a display name; mail clients do not).
    to = str(make_header(decode_header(message_from_bytes(raw)["To"])))
    assert " ".join(to.split()) == f"{' '.join(name.split())} <zoe@example.org>"
    assert message["From"].addresses[0].display_name.startswith("Fórum des parents")
    list_id = str(make_header(decode_header(message_from_bytes(raw)["List-Id"])))
    assert " ".join(list_id.split()) == "Fórum des parents et aidants – Île-de-France et au-delà <members.forum.test>"


def test_list_id_only_on_list_mail_and_mime_version_only_at_the_top(app: Any, clock: Any, smtp: Any) -> None:
    """E8: an announcement carries List-Id, a welcome email does not; each has one MIME-Version, at the top."""
    with app.app_context():
        member = add_member("member@example.org", clock=clock)
        with transaction(db.session):
            enqueue_mail(db.session, MailKind.WELCOME, clock=clock, member_id=member)
    due_announcement(app, clock, subject="Listed")
    run_tick_for_app(app)
    received = smtp.wait_for(2)
    by_subject = {str(message_from_bytes(r.raw, policy=email.policy.default)["Subject"]): r.raw for r in received}
    listed = by_subject.pop("Listed")
    assert message_from_bytes(listed)["List-Id"] == "Test Parent Carer Forum <members.forum.test>"
    (welcome,) = by_subject.values()
    assert message_from_bytes(welcome)["List-Id"] is None
    assert message_from_bytes(welcome)["Auto-Submitted"] == "auto-generated"
    for raw in (listed, welcome):
        assert raw.count(b"MIME-Version:") == 1 and b"MIME-Version: 1.0" in raw.split(b"\r\n\r\n", 1)[0]


def test_list_id_name_with_specials_is_quoted(make_app: Any, clock: Any, smtp: Any) -> None:
    """E8: a forum name with a comma and brackets is a quoted string in List-Id; the identifier stays as it is."""
    app = make_app(MAILER_FORUM_NAME='Parent Carers (North), "PCF"')
    with app.app_context():
        add_member("member@example.org", clock=clock)
    due_announcement(app, clock, subject="Quoted")
    run_tick_for_app(app)
    raw = smtp.wait_for(1)[0].raw
    assert b'\r\nList-Id: "Parent Carers (North), \\"PCF\\"" <members.forum.test>\r\n' in raw


def test_feedback_id_when_set_is_on_every_mail_and_signed(make_app: Any, clock: Any, smtp: Any,
                                                          dkim_key: tuple[Path, bytes]) -> None:
    """E2: MAILER_FEEDBACK_ID adds Gmail's Feedback-ID (announcement or kind, type, sender), covered by DKIM."""
    key_path, txt = dkim_key
    app = make_app(MAILER_DKIM_KEY_FILE=str(key_path), MAILER_DKIM_SELECTOR="mail2026", MAILER_FEEDBACK_ID="pcf-north")
    with app.app_context():
        member = add_member("member@example.org", clock=clock)
        with transaction(db.session):
            enqueue_mail(db.session, MailKind.WELCOME, clock=clock, member_id=member)
    announcement_id = due_announcement(app, clock, subject="Feedback")
    run_tick_for_app(app)
    by_subject = {str(message_from_bytes(r.raw, policy=email.policy.default)["Subject"]): r.raw
                  for r in smtp.wait_for(2)}
    listed = by_subject.pop("Feedback")
    (welcome,) = by_subject.values()
    assert message_from_bytes(listed)["Feedback-ID"] == f"a{announcement_id}:announcement:pcf-north"
    assert message_from_bytes(welcome)["Feedback-ID"] == "welcome:transactional:pcf-north"
    for raw in (listed, welcome):
        assert dkim.verify(raw, dnsfunc=lambda name, timeout=5: txt)
        assert not dkim.verify(raw.replace(b"pcf-north", b"pcf-south", 1), dnsfunc=lambda name, timeout=5: txt)


def test_no_feedback_id_unless_set(app: Any, clock: Any, smtp: Any) -> None:
    """E2: Feedback-ID is optional: without MAILER_FEEDBACK_ID no mail has one."""
    with app.app_context():
        add_member("member@example.org", clock=clock)
    due_announcement(app, clock, subject="Plain")
    run_tick_for_app(app)
    assert message_from_bytes(smtp.wait_for(1)[0].raw)["Feedback-ID"] is None
