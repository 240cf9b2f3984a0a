"""Write and see (V3, issue 18.4) in headless Chromium at phone and desktop width, checked with axe-core: the preview
follows the typing, the toolbar works from the keyboard, the audience count follows the ticked boxes, and an
autosaved draft is there after a reload."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from mailer.models import SocialMedia
from support.factories import add_member

from .admin import log_in

pytestmark = pytest.mark.browser
TYPED = "# Coffee morning\n\nDear {{ name }},\n\nPlease come. **It is free**"


def test_write_and_see_preview_toolbar_count_and_autosave(page: Page, live_server, clock, axe):
    """Typing updates the server-rendered preview; Bold and "Insert the member's name" work by keyboard and leave
    focus in the message; ticking a group changes the count; autosave keeps the draft across a reload; axe-clean."""
    with live_server.app.app_context():
        add_member("zoe@example.org", clock=clock, name="Zoë Parent", groups=[2], social_media=SocialMedia.NO)
        add_member("sam@example.org", clock=clock, name="Sam Carer", groups=[1])
    log_in(page, live_server, clock)
    page.get_by_role("navigation", name="Admin").get_by_role("link", name="New announcement").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("New announcement")
    expect(page.locator("#reach-count")).to_have_text("2")
    axe(page)

    # The preview follows the typing, rendered by the email's own code.
    page.get_by_label("Subject").fill("Coffee morning on Friday")
    message = page.get_by_label("Message")
    message.fill("# Coffee morning\n\nDear ")
    preview = page.frame_locator("#live-preview")
    expect(preview.get_by_role("heading", name="Coffee morning")).to_be_visible()
    expect(page.locator("#preview-subject")).to_have_text("Coffee morning on Friday")

    # The toolbar by keyboard: the button writes Markdown and focus goes back to the message.
    message.press("End")
    page.get_by_role("button", name="Insert the member's name").focus()
    page.keyboard.press("Enter")
    expect(message).to_be_focused()
    expect(page.get_by_role("status").filter(has_text="The member's name added")).to_have_count(1)
    page.keyboard.type(",\n\nPlease come. ")
    page.get_by_role("button", name="Bold").focus()
    page.keyboard.press("Enter")
    expect(message).to_be_focused()
    page.keyboard.type("It is free")
    expect(message).to_have_value(TYPED)
    expect(preview.get_by_text("Dear parent or carer,", exact=True)).to_be_visible()
    expect(preview.locator("strong", has_text="It is free")).to_be_visible()
    expect(page.locator("#reading-message")).to_have_text(re.compile("Write a little more"))

    # The count follows the boxes, before saving.
    page.get_by_role("checkbox", name="Local Offer working group").check()
    expect(page.locator("#reach-count")).to_have_text("1")
    expect(page.locator("#reach-members")).to_have_text("member")

    page.get_by_role("button", name="Phone").click()
    expect(page.get_by_role("button", name="Phone")).to_have_attribute("aria-pressed", "true")
    expect(page.get_by_role("button", name="Computer")).to_have_attribute("aria-pressed", "false")

    # Autosave makes the draft and says when; a reload shows the text, at the draft's own address.
    expect(page.locator("#autosave-status")).to_have_text(re.compile(r"^Saved at \d\d:\d\d$"), timeout=15_000)
    expect(page.locator("#compose-form")).to_have_attribute("data-saved", "yes", timeout=15_000)
    expect(page).to_have_url(re.compile(r"/admin/announcements/\d+/edit$"))
    axe(page)
    page.reload()
    expect(page.get_by_role("heading", level=1)).to_have_text("Edit announcement")
    expect(page.get_by_label("Message")).to_have_value(TYPED)
    expect(page.get_by_role("checkbox", name="Local Offer working group")).to_be_checked()
    expect(preview.get_by_text("Dear parent or carer,", exact=True)).to_be_visible()
    axe(page)


def test_test_send_page_to_typed_addresses(page: Page, live_server, clock, axe):
    """The test page (18.5): a bad address comes back in an error summary with the admin menu; two good ones are
    accepted with the member chosen in the preview; axe-clean both times."""
    with live_server.app.app_context():
        add_member("zoe@example.org", clock=clock, name="Zoë Parent", groups=[2])
    log_in(page, live_server, clock)
    page.goto("/admin/announcements/new")
    page.get_by_label("Subject").fill("Hello {{ name }}")
    page.get_by_label("Message").fill("Dear {{ name }}")
    page.get_by_role("button", name="Save draft").click()
    page.get_by_role("link", name="Send a test to other addresses").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Send a test")
    axe(page)
    page.get_by_label("Email addresses").fill("one@example.org\nnot-an-address")
    page.get_by_role("button", name="Send the test").click()
    expect(page.get_by_role("alert")).to_contain_text("“not-an-address” is not a valid email address")
    expect(page.get_by_role("navigation", name="Admin")).to_be_visible()
    axe(page)
    page.get_by_label("Email addresses").fill("one@example.org\ntwo@example.org")
    page.get_by_label("Fill it in with the details of").select_option(label="Zoë Parent – zoe@example.org")
    page.get_by_role("button", name="Send the test").click()
    expect(page.get_by_role("status").first).to_contain_text(
        "A test email is on its way to one@example.org, two@example.org, showing Zoë Parent's details"
    )
