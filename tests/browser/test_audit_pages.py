"""The audit log page and a writer's menu (V4, V5, issue 19) in headless Chromium at phone and desktop width,
each checked with axe-core."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from mailer.admins.accounts import create_admin
from mailer.extensions import db
from mailer.models import AdminRole

from .admin import log_in

pytestmark = pytest.mark.browser
WRITER = "writer@forum.example"
WRITER_PASSWORD = "a long writer password"


def test_owner_filters_the_audit_log_and_a_writer_sees_only_drafting(page: Page, live_server, clock, axe):
    """An owner opens the audit log from the menu, sees their log-in and a draft they made, filters by action;
    a writer's menu offers only drafting, and a member page refuses them with the menu kept; all axe-clean."""
    log_in(page, live_server, clock)
    nav = page.get_by_role("navigation", name="Admin")
    nav.get_by_role("link", name="New announcement").click()
    page.get_by_label("Subject").fill("Coffee morning")
    page.get_by_label("Message").fill("Come and meet other parents.")
    page.get_by_role("button", name="Save draft").click()

    nav.get_by_role("link", name="Audit log").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Audit log")
    events = page.locator("#audit-events")
    expect(events).to_contain_text("announcement created")
    expect(events).to_contain_text("logged in")
    axe(page)
    page.get_by_label("What").select_option(label="logged in")
    page.get_by_role("button", name="Show events").click()
    expect(events.get_by_role("row")).to_have_count(2)  # the header and the log-in
    expect(page.get_by_role("link", name="Download these events as a CSV file")).to_be_visible()
    axe(page)

    with live_server.app.app_context():
        create_admin(db.session, WRITER, WRITER_PASSWORD, clock=clock, role=AdminRole.WRITER)
        db.session.commit()
    nav.get_by_role("button", name="Log out").click()
    page.get_by_label("Email address", exact=True).fill(WRITER)
    page.get_by_label("Password", exact=True).fill(WRITER_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Overview")
    expect(nav.get_by_role("link")).to_have_text(
        ["Announcements", "New announcement", "Templates", "Public archive", "Your account", "Your log-ins"]
    )
    axe(page)
    page.goto("/admin/members")
    expect(page.get_by_role("heading", level=1)).to_have_text("You cannot use this page")
    expect(nav.get_by_role("link", name="New announcement")).to_be_visible()
    axe(page)
