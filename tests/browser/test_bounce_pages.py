"""The bounces page and the member page's bounce section (issue 8) in headless Chromium, checked with axe-core."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from mailer.bounces.records import store_bounce_message
from mailer.extensions import db
from mailer.worker.runner import process_bounces_for_app, run_tick_for_app
from support.factories import add_member, due_announcement

from .admin import log_in

pytestmark = pytest.mark.browser
CORPUS = Path(__file__).resolve().parent.parent / "data" / "dsn"


@pytest.fixture
def make_app(make_app):  # type: ignore[no-untyped-def]
    def factory(**overrides):  # type: ignore[no-untyped-def]
        return make_app(**{"MAILER_BOUNCE_ADDRESS": "bounces@forum.test", **overrides})

    return factory


def test_bounces_page_and_member_section(page: Page, live_server, clock, smtp, axe):
    """An admin finds a bounced member from the nav, sees the reason and opens the member; pages axe-clean."""
    app = live_server.app
    with app.app_context():
        add_member("sam@example.org", clock=clock, name="Sam Carer")
    due_announcement(app, clock, subject="Transport letter")
    run_tick_for_app(app)
    verp = smtp.wait_for(1)[0].mail_from
    raw = (CORPUS / "gmail_permanent.eml").read_text().replace("{{VERP}}", verp).replace("{{RCPT}}", "sam@example.org")
    with app.app_context():
        for message, rcpt in (
            (raw.encode(), verp),
            (b"From: someone@example.net\r\nSubject: Hello there\r\n\r\nHi.\r\n", "bounces@forum.test"),
        ):
            store_bounce_message(db.session, message, mail_from="", rcpt_tos=[rcpt], source="smtp",
                                 max_bytes=10_000_000, clock=clock)
        db.session.commit()
    process_bounces_for_app(app)
    log_in(page, live_server, clock)
    page.get_by_role("navigation", name="Admin").get_by_role("link", name="Bounces").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Bounces")
    expect(page.locator("#bounces-recent")).to_contain_text("The email account that you tried to reach does not exist")
    expect(page.locator("#bounces-recent")).to_contain_text("Transport letter")
    expect(page.locator("#bounces-near")).to_contain_text("1 of 3")
    expect(page.locator("#bounces-unmatched")).to_contain_text("Hello there")
    axe(page)
    page.locator("#bounces-near").get_by_role("link", name="sam@example.org").click()
    expect(page.get_by_role("heading", name="Bounces and complaints")).to_be_visible()
    axe(page)
