"""Issue 20 parts 1, 2 and 4 in headless Chromium at phone and desktop width, each page checked with axe-core:
/admin/groups (V6), /admin/settings (V6) and /admin/reach (R1), used as an owner would, keyboard-reachable
buttons only (no drag and drop)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from .admin import log_in

pytestmark = pytest.mark.browser


def test_groups_add_reorder_retire_and_bring_back(page: Page, live_server, clock, axe):
    """V6: an empty name is refused with an error summary; a new group is added, moved up with a button,
    retired after a confirmation naming how many people are in it, and brought back; the join form follows."""
    log_in(page, live_server, clock)
    page.get_by_role("navigation", name="Admin").get_by_role("link", name="Groups").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Groups")
    axe(page)

    page.get_by_role("button", name="Add the group").click()
    expect(page.get_by_role("alert")).to_contain_text("Enter a name for the group.")
    axe(page)

    page.get_by_label("Name", exact=True).fill("Autism support group")
    page.get_by_label("Description (optional)").fill("For parents and carers of autistic children.")
    page.get_by_role("button", name="Add the group").click()
    expect(page.get_by_role("status")).to_contain_text("Group “Autism support group” added")
    new_group = page.get_by_role("listitem").filter(has=page.get_by_role("heading", name="Autism support group"))
    new_group.get_by_role("button", name="Move up").click()
    expect(page.get_by_role("status")).to_contain_text("moved up")
    axe(page)

    page.get_by_role("link", name="Retire the group Autism support group").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Retire the group “Autism support group”?")
    expect(page.get_by_text("0 people are in this group.")).to_be_visible()
    axe(page)
    page.get_by_role("button", name="Yes, retire the group").click()
    expect(page.get_by_role("heading", name="Retired groups")).to_be_visible()
    page.goto("/join")
    expect(page.get_by_label("Autism support group")).to_have_count(0)

    page.goto("/admin/groups")
    page.get_by_role("button", name="Bring back").click()
    expect(page.get_by_role("status")).to_contain_text("brought back")
    page.goto("/join")
    expect(page.get_by_label("Autism support group")).to_be_visible()


def test_forum_details_change_shows_on_the_next_page(page: Page, live_server, clock, axe):
    """V6: a bad contact address is refused with a message tied to its field; a new name and footer line show
    in the header and footer of the next page."""
    log_in(page, live_server, clock)
    page.get_by_role("navigation", name="Admin").get_by_role("link", name="Forum details").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Forum details")
    axe(page)

    page.get_by_label("Contact email address").fill("not an address")
    page.get_by_role("button", name="Save the forum details").click()
    expect(page.get_by_role("alert")).to_contain_text("Enter the contact address as an email address")
    expect(page.get_by_label("Contact email address")).to_have_attribute("aria-invalid", "true")
    axe(page)

    page.get_by_label("Contact email address").fill("info@northshire.example")
    page.get_by_label("Forum name").fill("Northshire Parent Carer Forum")
    page.get_by_label("Footer line (optional)").fill("Registered charity number 1234567")
    page.get_by_label("How long you have to stop a send").fill("30")
    page.get_by_role("button", name="Save the forum details").click()
    expect(page.get_by_role("status")).to_contain_text("The forum's details are saved")
    expect(page.locator(".site-name")).to_have_text("Northshire Parent Carer Forum")
    expect(page.get_by_role("contentinfo")).to_contain_text("Registered charity number 1234567")
    page.goto("/")
    expect(page).to_have_title(re.compile("Northshire Parent Carer Forum$"))
    expect(page.get_by_role("link", name="info@northshire.example")).to_be_visible()


def test_reach_page_previews_the_poster_and_saves_the_three_lines(page: Page, live_server, clock, axe):
    """R1: the reach page links both PDFs and previews the poster in a titled frame; the three lines are saved,
    and a line too long is refused with a message."""
    log_in(page, live_server, clock)
    page.get_by_role("navigation", name="Admin").get_by_role("link", name="Posters and leaflets").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Reach parents")
    expect(page.get_by_role("link", name="Download the A4 poster (PDF)")).to_have_attribute("href", "/poster.pdf")
    expect(page.get_by_role("link", name="Download the A5 leaflet (PDF)")).to_have_attribute("href", "/leaflet.pdf")
    expect(page.locator("iframe[title='Preview of the A4 poster (PDF)']")).to_have_attribute("src", "/poster.pdf")
    axe(page)

    page.get_by_label("Second line").fill("x" * 81)
    # By keyboard: the poster preview (a PDF in a frame) can still move the layout when it finishes loading,
    # and a mouse click aimed before that lands elsewhere on a phone-sized page.
    page.get_by_role("button", name="Save the three lines").press("Enter")
    expect(page.get_by_role("alert")).to_contain_text("Line 2 must be 80 characters or fewer.")
    axe(page)

    page.get_by_label("Second line").fill("Come to our coffee mornings.")
    page.get_by_role("button", name="Save the three lines").press("Enter")
    expect(page.get_by_role("status")).to_contain_text("The three lines are saved")
    expect(page.get_by_label("Second line")).to_have_value("Come to our coffee mornings.")
    response = page.request.get("/poster.pdf")
    assert response.ok and response.headers["content-type"] == "application/pdf"
