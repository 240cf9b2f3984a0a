"""J1 + J2 end to end through the app and a real SMTP server: join, confirm, welcome."""

from __future__ import annotations

import re

from sqlalchemy import func, select

from mailer.extensions import db
from mailer.models import ConsentAction, ConsentEvent, Member, MemberStatus, OutboxMessage, OutboxState
from mailer.worker.runner import run_tick_for_app
from support.mail import html_links, html_words, link_to, parts, text_links, wire_lines
from support.web import csrf_token, join, path_of, post_button


def test_join_confirm_welcome_over_real_smtp(app, client, smtp):
    """A newcomer joins, gets one confirmation mail, confirms by POST, then gets the welcome mail."""
    response = join(client, email="Zoe.Parent@Example.ORG", name="Zoë Parent", groups=[1, 2])
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/join/check-your-email")

    assert run_tick_for_app(app).outbox.sent == 1
    (confirmation,) = smtp.wait_for(1)
    assert confirmation.rcpt_tos == ["Zoe.Parent@example.org"]
    message = confirmation.message
    assert message["Subject"] == "Please confirm you want to join Test Parent Carer Forum"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["To"].addresses[0].display_name == "Zoë Parent"
    confirm_url = link_to(message, "/confirm/")
    assert confirm_url.startswith("https://forum.test/confirm/")

    # Opening the link (a mail scanner would) changes nothing.
    page = client.get(path_of(confirm_url))
    assert page.status_code == 200
    assert "Confirm my membership" in page.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(Member.status)) is MemberStatus.PENDING

    confirmed = post_button(client, path_of(confirm_url))
    assert confirmed.status_code == 200
    assert "You are subscribed" in confirmed.get_data(as_text=True)
    with app.app_context():
        member = db.session.scalars(select(Member)).one()
        assert member.status is MemberStatus.MEMBER
        assert [g.name for g in member.groups] == ["Forum news", "Local Offer working group"]
        actions = db.session.scalars(select(ConsentEvent.action).order_by(ConsentEvent.id)).all()
        assert actions == [ConsentAction.REQUESTED, ConsentAction.CONFIRMED]

    run_tick_for_app(app)
    welcome = smtp.wait_for(2)[1].message
    assert welcome["Subject"] == "Welcome to Test Parent Carer Forum"
    assert "/unsubscribe/" in link_to(welcome, "/unsubscribe/")


def test_confirming_twice_sends_one_welcome(app, client, smtp):
    """A second POST of the same link (a scanner, a double tap) is harmless: one welcome, one event."""
    join(client, email="twice@example.org")
    run_tick_for_app(app)
    url = link_to(smtp.wait_for(1)[0].message, "/confirm/")
    token = csrf_token(client.get(path_of(url)).get_data(as_text=True))
    assert client.post(path_of(url), data={"csrf_token": token}).status_code == 200
    again = client.post(path_of(url), data={"csrf_token": token})
    assert again.status_code == 200
    assert "already confirmed" in again.get_data(as_text=True)
    run_tick_for_app(app)
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(OutboxMessage)) == 2
        confirmed = select(func.count()).where(ConsentEvent.action == ConsentAction.CONFIRMED)
        assert db.session.scalar(confirmed) == 1
    assert len(smtp.received) == 2


def test_both_parts_carry_the_same_words_and_links(app, client, smtp):
    """E1: text/plain first, text/html second, from one source: same words, same links."""
    join(client, email="parts@example.org", name="Pat Parent")
    run_tick_for_app(app)
    message = smtp.wait_for(1)[0].message
    text, html = parts(message)
    assert sorted(set(text_links(text))) == sorted({h for h in html_links(html) if h.startswith("http")})
    for word in ("confirm", "Pat", "Parent", "days", "30"):
        assert word in text and word in html
    # Every word of the HTML appears in the text, in the same order.
    text_words = text.split()
    position = 0
    for word in html_words(html):
        cleaned = word.strip(".,:;()")
        if not cleaned:
            continue
        found = next((i for i in range(position, len(text_words)) if cleaned in text_words[i]), None)
        assert found is not None, f"{word!r} from the HTML is missing from the text part"
        position = found


def test_message_on_the_wire_meets_e1_e2(app, client, smtp):
    """CRLF line ends, no line over 998 octets, utf-8, Date, Message-ID on our domain, Reply-To, no List-Id (E8)."""
    join(client, email="wire@example.org", name="Wire Tester")
    run_tick_for_app(app)
    received = smtp.wait_for(1)[0]
    assert b"\n" not in received.raw.replace(b"\r\n", b"")
    assert max(len(line) for line in wire_lines(received.raw)) <= 998
    message = received.message
    assert re.fullmatch(r"<[^@>]+@forum\.test>", message["Message-ID"])
    assert message["From"].addresses[0].display_name == "Test Parent Carer Forum"
    assert message["Reply-To"] == "hello@forum.test"
    assert message["List-Id"] is None  # a confirmation is not list mail (E8)
    assert message["Date"].datetime is not None
    text_part, html_part = message.iter_parts()
    assert text_part.get_content_charset() == "utf-8"
    assert html_part.get_content_charset() == "utf-8"
    html = html_part.get_content()
    assert '<html lang="en-GB">' in html
    assert "<title>Please confirm you want to join Test Parent Carer Forum</title>" in html
    assert 'role="presentation"' in html
    kept = re.findall(r"<style>(.*?)</style>", html, re.S)
    # inlined (E5), @media kept (E7)
    assert 'style="' in html and all(block.strip().startswith("@media") for block in kept)


def test_pending_member_gets_nothing_but_the_confirmation(app, client, smtp):
    """Until confirmed, nobody gets more than the confirmation request (J2), however often they join."""
    join(client, email="pending@example.org")
    join(client, email="pending@example.org")
    run_tick_for_app(app)
    smtp.wait_for(1)
    assert [r.message["Subject"] for r in smtp.to("pending@example.org")] == [
        "Please confirm you want to join Test Parent Carer Forum"
    ]
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(OutboxMessage)) == 1
        assert db.session.scalar(select(OutboxMessage.state)) is OutboxState.SENT
