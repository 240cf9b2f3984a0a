"""V4 admin accounts pages in headless Chromium at phone and desktop width, each checked with axe-core: the admins
page and its invite form, and accepting the invitation from the real email (the SMTP sink)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from mailer.worker.runner import run_tick_for_app
from support.mail import link_to

from .admin import log_in

pytestmark = pytest.mark.browser

INVITEE = "helper@example.org"


def test_invite_an_admin_and_accept_the_invitation(page: Page, live_server, clock, smtp, axe):
    """Issue 19: an owner invites from /admin/admins (the withdraw, role and password pages looked at on the way; the
    last owner's demotion refused); the invitee opens the emailed link, a common password is refused with an error
    summary, a good one accepted, and they log in. Every page and error state axe-clean."""
    log_in(page, live_server, clock)
    page.get_by_role("navigation", name="Admin").get_by_role("link", name="Admins").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Admins")
    expect(page.get_by_role("table", name="Admins").get_by_role("row")).to_have_count(2)  # header and the owner
    axe(page)

    page.get_by_role("button", name="Send the invitation").click()  # nothing filled in
    expect(page.get_by_role("alert")).to_contain_text("Enter the email address to invite.")
    axe(page)
    page.get_by_label("Email address", exact=True).fill(INVITEE)
    page.get_by_label(re.compile("^Sender")).check()
    page.get_by_role("button", name="Send the invitation").click()
    expect(page.get_by_role("status")).to_contain_text(f"Invitation sent to {INVITEE}")
    waiting = page.get_by_role("table", name="Invitations not yet accepted")
    expect(waiting.get_by_role("row").nth(1)).to_contain_text(INVITEE)
    axe(page)

    # The confirmation steps and the account pages, as they look (each left without doing anything).
    waiting.get_by_role("link", name=f"Withdraw the invitation to {INVITEE}").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Withdraw the invitation to {INVITEE}?")
    axe(page)
    page.get_by_role("link", name="No, go back").click()
    page.get_by_role("link", name="Change role of admin@forum.example").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Change the role of admin@forum.example")
    axe(page)
    page.get_by_label(re.compile("^Writer")).check()
    page.get_by_role("button", name="Change the role").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("This cannot be done")  # the only owner
    axe(page)
    page.get_by_role("navigation", name="Admin").get_by_role("link", name="Your account").click()
    page.get_by_role("link", name="Change your password").click()
    axe(page)

    run_tick_for_app(live_server.app)
    link = link_to(smtp.wait_for(1)[0].message, "/admin/invitation/")
    page.get_by_role("button", name="Log out").click()
    page.get_by_role("link", name="Forgot your password?").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Forgot your password?")
    axe(page)

    page.goto(link)
    expect(page.get_by_role("heading", level=1)).to_have_text("Accept your invitation")
    axe(page)
    page.get_by_label("New password").fill("Password1234!")
    page.get_by_role("button", name="Set my password").click()
    expect(page.get_by_role("alert")).to_contain_text("too easy to guess")
    axe(page)
    page.get_by_label("New password").fill("kettle orchard lantern pebble")
    page.get_by_role("button", name="Set my password").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Log in")
    expect(page.get_by_role("status")).to_contain_text("Your admin account is ready")

    page.get_by_label("Email address", exact=True).fill(INVITEE)
    page.get_by_label("Password", exact=True).fill("kettle orchard lantern pebble")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Overview")
    expect(page.get_by_role("navigation", name="Admin").get_by_role("link", name="Admins")).to_have_count(0)
