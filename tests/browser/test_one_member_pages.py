"""V7 pages in headless Chromium at phone and desktop width, each checked with axe-core: add a member (with
evidence, and with errors), change their details and address, and a member changing their own address."""

from __future__ import annotations

from datetime import timedelta

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from mailer.extensions import db
from mailer.models import ConsentEvent, ConsentMethod, Member
from mailer.worker.runner import run_tick_for_app
from support.mail import link_to

from .admin import log_in

pytestmark = pytest.mark.browser


def test_add_a_member_who_phoned_then_change_their_details_and_address(page: Page, live_server, clock, smtp, axe):
    """Add a member with evidence (first with a missing date), edit their groups, send a new-address link."""
    log_in(page, live_server, clock)
    page.goto("/admin/members")
    page.get_by_role("link", name="Add a member").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Add a member")
    expect(page.get_by_label("Send them a confirmation email")).to_be_checked()
    axe(page)

    page.get_by_label("Name", exact=True).fill("Pat Phoned")
    page.get_by_label("Email address").fill("pat@example.org")
    page.get_by_label("Local Offer working group").check()
    page.get_by_label("Prefer not to say").check()
    page.get_by_label("They agreed by phone").check()
    page.get_by_role("button", name="Add them").click()
    expect(page.get_by_role("alert")).to_contain_text("Enter the date they agreed.")
    axe(page)

    page.get_by_label("The date they agreed").fill((clock.now() - timedelta(days=1)).date().isoformat())
    page.get_by_label("Note (optional)").fill("Rang the office; spoke to Sam.")
    page.get_by_role("button", name="Add them").click()
    expect(page.get_by_role("status")).to_contain_text("pat@example.org is a member now")
    expect(page.get_by_role("table", name="Consent history, oldest first")).to_contain_text("By phone")
    axe(page)

    page.get_by_role("link", name="Change their details").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Change their details")
    axe(page)
    page.get_by_label("Forum news").check()
    page.get_by_role("button", name="Save their details").click()
    expect(page.get_by_role("status")).to_contain_text("Their details are saved.")

    page.get_by_role("link", name="Change their email address").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Change their email address")
    axe(page)
    page.get_by_label("New email address").fill("pat.new@example.org")
    page.get_by_role("button", name="Send the link to the new address").click()
    expect(page.locator("#pending-address")).to_contain_text("pat.new@example.org")
    axe(page)
    with live_server.app.app_context():
        event = db.session.scalars(select(ConsentEvent).order_by(ConsentEvent.id)).first()
        assert event.method is ConsentMethod.PHONE and event.note == "Rang the office; spoke to Sam."


def test_a_member_changes_their_own_address(page: Page, live_server, clock, smtp, axe):
    """From the preferences page: ask, open the link sent to the new address, confirm; each page axe-clean."""
    page.goto("/join")
    page.get_by_label("Name", exact=True).fill("Olive Own")
    page.get_by_label("Email address").fill("olive@example.org")
    page.get_by_label("No", exact=True).check()
    page.get_by_label("Yes, I want", exact=False).check()
    page.get_by_role("button", name="Join").click()
    run_tick_for_app(live_server.app)
    page.goto(link_to(smtp.wait_for(1)[0].message, "/confirm/"))
    page.get_by_role("button", name="Confirm my membership").click()
    run_tick_for_app(live_server.app)
    page.goto(link_to(smtp.wait_for(2)[1].message, "/preferences/"))

    page.get_by_role("link", name="Change your email address").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Change your email address")
    axe(page)
    page.get_by_role("button", name="Send the link to my new address").click()
    expect(page.get_by_role("alert")).to_contain_text("Enter the new email address.")
    axe(page)
    page.get_by_label("New email address").fill("olive.new@example.org")
    page.get_by_role("button", name="Send the link to my new address").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Check your new inbox")
    axe(page)

    run_tick_for_app(live_server.app)
    page.goto(link_to(smtp.wait_for(3)[2].message, "/change-address/"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Confirm your new email address")
    axe(page)
    page.get_by_role("button", name="Use this address for my emails").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Your email address is changed")
    axe(page)
    page.get_by_role("link", name="Open your details").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Your details")
    with live_server.app.app_context():
        assert db.session.scalar(select(Member.email)) == "olive.new@example.org"
    run_tick_for_app(live_server.app)
    assert smtp.wait_for(4)[3].rcpt_tos == ["olive@example.org"]


def test_embed_snippets_page(page: Page, live_server, clock, axe):
    """/admin/reach/embed with its snippets and the live preview is axe-clean."""
    log_in(page, live_server, clock)
    page.goto("/admin/reach/embed")
    expect(page.get_by_role("heading", level=1)).to_have_text("Put the join form on your website")
    expect(page.get_by_label("Code for the join form")).to_contain_text("/join/embed")
    axe(page)
