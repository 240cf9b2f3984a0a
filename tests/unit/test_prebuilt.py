"""Per-recipient messages from a template rendered once: the bytes decode to exactly MailTemplate.fill's text."""

from __future__ import annotations

from datetime import UTC, datetime
from email import policy
from email.parser import BytesParser

import pytest

from mailer.mail.emails import MailSettings, MailTemplate
from mailer.mail.prebuilt import PrebuiltMessage

SETTINGS = MailSettings(
    forum_name="Parent Carer Forum", from_name="Parent Carer Forum", from_address="noreply@forum.test",
    reply_to="hello@forum.test", contact_address="hello@forum.test", message_id_domain="forum.test",
    list_id="members.forum.test", base_url="https://forum.test",
)
SLOTS = {"name": "MAILERSLOT0X", "link": "MAILERSLOT1X"}
TEXT = "\n".join([
    "Dear MAILERSLOT0X,",
    "",
    "A line with no slot at all, long enough to be wrapped by quoted-printable: " + "word " * 20,
    ".A line starting with a dot, and one with = and tabs\tin it",
    "Café, naïve, £5 — and MAILERSLOT0X again on a line that is well over seventy-six characters long",
    "Unsubscribe: MAILERSLOT1X",
    "Last line without a slot",
])
HTML = "<p>Dear MAILERSLOT0X,</p>\n<p>" + "constant " * 30 + "</p>\n<p><a href=\"MAILERSLOT1X\">Leave</a></p>"
TEMPLATE = MailTemplate(subject="News for MAILERSLOT0X", html=HTML, text=TEXT, slots=SLOTS)


@pytest.mark.parametrize("name", ["Sam", "Zoë O'Brien-Smith", "<b>&amp;</b>", ""])
def test_each_recipients_bytes_decode_to_the_filled_template(name):
    """Whatever the name, both parts decode to what MailTemplate.fill gives, headers included."""
    prebuilt = PrebuiltMessage(SETTINGS, transactional=False)
    values = {"name": name, "link": "https://forum.test/unsubscribe/abc.def"}
    for _ in range(2):  # the second time the encoded constant lines come from the cache
        raw = prebuilt.render_template(TEMPLATE, values, to_address="sam@example.org", to_name=name,
                                       now=datetime(2026, 11, 23, 9, 0, tzinfo=UTC))
        head, _, body = raw.partition(b"\r\n\r\n")
        assert b"\n" not in raw.replace(b"\r\n", b"") and b"\r" not in raw.replace(b"\r\n", b"")
        assert max(map(len, head.split(b"\r\n"))) <= 998 and max(map(len, body.split(b"\r\n"))) <= 76
        message = BytesParser(policy=policy.default).parsebytes(raw)
        subject, html, text = TEMPLATE.fill(values)
        assert message["Subject"] == subject.strip()
        assert message.get_body(("plain",)).get_content().replace("\r\n", "\n").rstrip("\n") == text
        assert message.get_body(("html",)).get_content().replace("\r\n", "\n").rstrip("\n") == html
