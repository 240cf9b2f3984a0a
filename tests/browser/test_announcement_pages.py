"""Issue 9 pages in headless Chromium at phone and desktop width, each checked with axe-core:
a new announcement from a template, a letter attached, the preview for a chosen member, a test send."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from mailer.worker.runner import run_tick_for_app
from support.documents import tiny_pdf
from support.factories import add_member
from support.mail import flat, parts, text_links
from support.web import path_of

from .admin import log_in

pytestmark = pytest.mark.browser


@pytest.fixture
def make_app(make_app, tmp_path: Path):  # type: ignore[no-untyped-def]
    """Uploaded documents go to this test's directory, not to instance/."""

    def factory(**overrides):  # type: ignore[no-untyped-def]
        return make_app(**{"MAILER_DOCUMENT_DIR": str(tmp_path / "documents"), **overrides})

    return factory


def test_announcement_from_template_with_a_letter_preview_and_test_send(page: Page, live_server, clock, smtp,
                                                                         tmp_path, axe):
    """Template -> draft -> attach a PDF -> preview as a member -> test email with the letter's link; axe-clean."""
    with live_server.app.app_context():
        add_member("zoe@example.org", clock=clock, name="Zoë Parent", groups=[2])
    log_in(page, live_server, clock)

    page.get_by_role("navigation", name="Admin").get_by_role("link", name="Templates").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Announcement templates")
    axe(page)
    starter = page.get_by_role("listitem").filter(has=page.get_by_role("heading", name="Meeting invitation"))
    starter.get_by_role("button", name="New announcement from this template").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Edit announcement")
    expect(page.get_by_label("Message")).to_contain_text("Dear {{ name }},")
    expect(page.get_by_role("region", name=re.compile("look unfinished"))).to_contain_text("[meeting name]")  # V2
    axe(page)
    page.get_by_label("Subject").fill("You are invited: coffee morning on Friday 10 May, {{ name }}")
    page.get_by_label("Message").fill(  # the template's gaps filled in: a test send is refused while any is left
        "# You are invited: coffee morning\n\nDear {{ name }},\n\nCome and talk about the Local Offer on "
        "Friday 10 May, 10am to noon, at the Community Centre.\n\nBest wishes,\n\nSam, for the forum"
    )
    page.get_by_role("button", name="Save draft").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(re.compile("^You are invited: coffee morning"))

    page.get_by_role("link", name="Attach a document").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Attach a document")
    axe(page)
    letter = tmp_path / "Council letter – May.pdf"
    letter.write_bytes(tiny_pdf())
    page.get_by_label("Document (PDF, Word or OpenDocument)").set_input_files(str(letter))
    page.get_by_label("Link text").fill("Council letter")
    page.get_by_role("button", name="Upload and attach").click()
    documents = page.get_by_role("region", name="Documents")
    expect(documents.get_by_role("link", name="Council letter", exact=True)).to_be_visible()
    axe(page)

    page.get_by_label("Show it as this member gets it").select_option(label="Zoë Parent – zoe@example.org")
    page.get_by_role("button", name="Show the preview").click()
    expect(page.locator("pre.preview-text")).to_contain_text("Dear Zoë Parent,")
    expect(page.locator("pre.preview-text")).to_contain_text("Council letter (PDF, 1 KB)")
    preview = page.frame_locator("iframe.preview")
    expect(preview.get_by_role("link", name="Council letter (PDF, 1 KB)")).to_be_visible()
    axe(page)

    page.get_by_role("button", name="Send a test to me").click()
    expect(page.get_by_role("status")).to_contain_text("A test email is on its way")
    run_tick_for_app(live_server.app)
    message = smtp.wait_for(1)[0].message
    assert message["Subject"] == "[Test] You are invited: coffee morning on Friday 10 May, parent or carer"
    text, _html = parts(message)
    assert "Dear parent or carer," in text and "Council letter (PDF, 1 KB)" in flat(text)
    [link] = [url for url in text_links(text) if "/documents/" in url]
    served = page.request.get(path_of(link))
    assert served.status == 200 and served.headers["content-type"] == "application/pdf"
    assert served.headers["x-content-type-options"] == "nosniff"
