"""Two-step set-up and the sessions page (issue 19, items 3 and 5) in headless Chromium, checked with axe-core."""

from __future__ import annotations

import io

import pyotp
import pytest
import zxingcpp
from PIL import Image
from playwright.sync_api import Page, expect

from .admin import log_in

pytestmark = pytest.mark.browser


def test_two_step_set_up_and_sessions_pages(page: Page, live_server, clock, axe):
    """An admin sets up two-step login from the QR code (decoded from the screen: it holds the same secret as
    the text) and a code from it, sees ten recovery codes, then finds their log-in on the sessions page;
    every page axe-clean at phone and desktop sizes."""
    log_in(page, live_server, clock)
    page.get_by_role("navigation", name="Admin").get_by_role("link", name="Your log-ins").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Where you are logged in")
    expect(page.locator("#my-sessions")).to_contain_text("This device")
    expect(page.locator("#my-sessions")).to_contain_text("Chrome on Linux")
    axe(page)

    page.get_by_role("link", name="Two-step login", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Set up two-step login")
    axe(page)
    secret = page.locator("#two-step-secret").inner_text().replace(" ", "")
    shot = Image.open(io.BytesIO(page.locator("#two-step-qr svg").screenshot()))
    decoded = zxingcpp.read_barcodes(shot)
    assert decoded, "the QR code can be read from the screen"
    assert pyotp.parse_uri(decoded[0].text).secret == secret

    page.get_by_label("Code from your authenticator app").fill("123")
    page.get_by_role("button", name="Turn on two-step login").click()
    expect(page.locator(".error-summary")).to_be_visible()
    axe(page)

    page.get_by_label("Code from your authenticator app").fill(pyotp.TOTP(secret).at(clock.now()))
    page.get_by_role("button", name="Turn on two-step login").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Your recovery codes")
    expect(page.locator("#recovery-codes li")).to_have_count(10)
    axe(page)
