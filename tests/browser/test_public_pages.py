"""J1, J2, J4 pages in headless Chromium at phone and desktop width, each checked with axe-core.

The app runs on a live loopback server; mail goes to the real SMTP sink and links are
followed from the text part, as a reader would."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from mailer.extensions import db
from mailer.models import Member, MemberStatus
from mailer.worker.runner import run_tick_for_app
from support.mail import link_to
from support.web import join, path_of, post_button

pytestmark = pytest.mark.browser

FORUM = "Test Parent Carer Forum"
GROUPS = ["Forum news", "Local Offer working group", "Voice and Influence group"]
SOCIAL_MEDIA = "Do you follow the forum on social media?"


def consent_box(page: Page) -> Any:
    return page.get_by_role("checkbox", name=re.compile(f"^Yes, I want {FORUM} to email me"))


def fill_join_form(page: Page, *, name: str = "Zoë Parent", email: str = "zoe@example.org") -> None:
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_label("Email address", exact=True).fill(email)
    page.get_by_role("checkbox", name="Local Offer working group", exact=True).check()
    page.get_by_role("group", name=SOCIAL_MEDIA).get_by_role("radio", name="No", exact=True).check()
    consent_box(page).check()


def join_in_browser(page: Page, **details: str) -> None:
    page.goto("/join")
    fill_join_form(page, **details)
    page.get_by_role("button", name="Join", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Check your email")


def assert_fits_width(page: Page) -> None:
    """Nothing forces sideways scrolling (WCAG 1.4.10 reflow), which matters most on a phone."""
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"page is {overflow}px wider than the viewport"


def test_join_form_fields_have_visible_labels(page: Page, live_server, axe):
    """J1: every field has a visible label, consent starts unticked and links the privacy notice; page is axe-clean."""
    response = page.goto("/join")
    assert response is not None and response.status == 200
    expect(page.get_by_role("heading", level=1)).to_have_text("Join our email list")
    expect(page.get_by_label("Name", exact=True)).to_be_visible()
    expect(page.get_by_label("Email address", exact=True)).to_be_visible()
    expect(page.get_by_label("Email address", exact=True)).to_have_attribute("type", "email")
    for group in GROUPS:
        expect(page.get_by_role("checkbox", name=group, exact=True)).to_be_visible()
    social = page.get_by_role("group", name=SOCIAL_MEDIA)
    for answer in ["Yes", "No", "Prefer not to say"]:
        expect(social.get_by_role("radio", name=answer, exact=True)).to_be_visible()
        expect(social.get_by_role("radio", name=answer, exact=True)).not_to_be_checked()

    consent = consent_box(page)
    expect(consent).to_be_visible()
    expect(consent).not_to_be_checked()
    expect(consent).to_have_accessible_name(re.compile(r"withdraw my consent at any time.*privacy notice"))
    privacy = page.locator("label[for='consent']").get_by_role("link", name="privacy notice")
    expect(privacy).to_have_attribute("href", "/privacy")
    # The honeypot is out of sight and out of the accessibility tree.
    expect(page.get_by_role("textbox", name="Leave this empty")).to_have_count(0)
    assert_fits_width(page)
    axe(page)

    fill_join_form(page)
    page.get_by_role("button", name="Join", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Check your email")
    expect(page).to_have_url(re.compile(r"/join/check-your-email$"))
    axe(page)


def test_empty_join_form_shows_errors_tied_to_fields(page: Page, live_server, axe):
    """J1: an empty submit answers 400 with an error summary linking each field and errors tied to fields."""
    page.goto("/join")
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        page.get_by_role("button", name="Join", exact=True).click()
    assert posted.value.status == 400
    expect(page).to_have_title(re.compile(r"^Error: Join our email list"))

    summary = page.get_by_role("alert")
    expect(summary.get_by_role("heading", name="There is a problem")).to_be_visible()
    expect(summary).to_be_focused()  # keyboard and screen reader users land on the problems
    links = summary.get_by_role("link")
    expect(links).to_have_text([
        "Enter your name.",
        "Enter your email address.",
        "Tell us whether you follow the forum on social media.",
        "Tick the box to say you want to get our emails.",
    ])
    assert [links.nth(i).get_attribute("href") for i in range(4)] == ["#name", "#email", "#social_media", "#consent"]

    name = page.get_by_label("Name", exact=True)
    email = page.get_by_label("Email address", exact=True)
    consent = consent_box(page)
    for field, message in [(name, "Enter your name."), (email, "Enter your email address."),
                           (consent, "Tick the box to say you want to get our emails.")]:
        expect(field).to_have_attribute("aria-invalid", "true")
        expect(field).to_have_accessible_description(re.compile(re.escape(message)))
    expect(page.get_by_role("group", name=SOCIAL_MEDIA)).to_have_accessible_description(
        re.compile("Tell us whether you follow the forum on social media.")
    )
    # Following a summary link puts the cursor in that field.
    links.first.click()
    expect(name).to_be_focused()
    assert_fits_width(page)
    axe(page)

    fill_join_form(page, name="Sam Carer", email="sam@example.org")
    page.get_by_role("button", name="Join", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Check your email")
    axe(page)


def test_join_confirm_and_welcome_in_the_browser(page: Page, live_server, smtp, axe):
    """J1 + J2: join, open the emailed link (a page with one button), confirm by POST, get the welcome mail."""
    join_in_browser(page, email="journey@example.org")
    assert run_tick_for_app(live_server.app).outbox.sent == 1
    confirmation = smtp.wait_for(1)[0].message
    assert confirmation["Subject"] == f"Please confirm you want to join {FORUM}"
    link = link_to(confirmation, "/confirm/")
    assert link.startswith(live_server.url + "/confirm/")

    response = page.goto(link)
    assert response is not None and response.status == 200
    expect(page.get_by_role("heading", level=1)).to_have_text("Confirm your membership")
    expect(page.get_by_role("button")).to_have_count(1)
    expect(page.get_by_role("button")).to_have_text("Confirm my membership")
    with live_server.app.app_context():
        assert db.session.scalar(select(Member.status)) is MemberStatus.PENDING  # opening the link is not consent
    axe(page)

    page.get_by_role("button", name="Confirm my membership").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("You are subscribed")
    expect(page.get_by_text("We have sent you a welcome email.")).to_be_visible()
    axe(page)

    run_tick_for_app(live_server.app)
    welcome = smtp.wait_for(2)[1]
    assert welcome.rcpt_tos == ["journey@example.org"]
    assert welcome.message["Subject"] == f"Welcome to {FORUM}"


def test_expired_link_offers_a_new_one(page: Page, live_server, smtp, clock, axe):
    """J2: a link older than 7 days shows "Send me a new link"; pressing it mails a fresh link that works."""
    join_in_browser(page, email="late@example.org")
    run_tick_for_app(live_server.app)
    old_link = link_to(smtp.wait_for(1)[0].message, "/confirm/")

    clock.advance(days=8)
    response = page.goto(old_link)
    assert response is not None and response.status == 410
    expect(page.get_by_role("heading", level=1)).to_have_text("This link has expired")
    expect(page.get_by_role("button")).to_have_text(["Send me a new link"])
    axe(page)

    page.get_by_role("button", name="Send me a new link").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Check your email")
    expect(page.get_by_text("we have sent a new confirmation email")).to_be_visible()
    axe(page)

    run_tick_for_app(live_server.app)
    second = smtp.wait_for(2)[1].message
    assert second["Subject"] == f"Please confirm you want to join {FORUM}"
    new_link = link_to(second, "/confirm/")
    assert new_link != old_link
    page.goto(new_link)
    expect(page.get_by_role("button")).to_have_text(["Confirm my membership"])


def test_unsubscribe_page_and_unsubscribed_page(page: Page, live_server, smtp, axe):
    """J4: the unsubscribe link from the welcome mail shows one button; pressing it unsubscribes at once; after
    erasure the link says "You are not on our list"."""
    app = live_server.app
    client = app.test_client()
    assert join(client, email="leaving@example.org").status_code == 303
    run_tick_for_app(app)
    confirm = link_to(smtp.wait_for(1)[0].message, "/confirm/")
    assert post_button(client, path_of(confirm)).status_code == 200
    run_tick_for_app(app)
    welcome = smtp.wait_for(2)[1].message
    unsubscribe = link_to(welcome, "/unsubscribe/")
    assert unsubscribe.startswith(live_server.url + "/unsubscribe/")

    response = page.goto(unsubscribe)
    assert response is not None and response.status == 200
    expect(page.get_by_role("heading", level=1)).to_have_text("Unsubscribe")
    expect(page.get_by_role("button")).to_have_text(["Unsubscribe"])
    axe(page)

    page.get_by_role("button", name="Unsubscribe").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("You are unsubscribed")
    expect(page.get_by_role("link", name="join again")).to_have_attribute("href", "/join")
    with app.app_context():
        assert db.session.scalar(select(Member.status)) is MemberStatus.UNSUBSCRIBED
    axe(page)

    # Once erased, the same link still answers (200): they are not on the list (issue 17).
    assert post_button(client, path_of(link_to(welcome, "/preferences/")) + "/erase").status_code == 200
    response = page.goto(unsubscribe)
    assert response is not None and response.status == 200
    expect(page.get_by_role("heading", level=1)).to_have_text("You are not on our list")
    axe(page)


# (path, status, heading): pages people reach from emails, the footer, or by mistyping a link.
INFORMATION_AND_ERROR_PAGES = [
    ("/", 200, f"{FORUM} by email"),
    ("/privacy", 200, "Privacy notice"),
    ("/archive", 200, "Past announcements"),  # with its feed link (R3)
    ("/archive/view/tampered.link", 404, "Page not found"),  # a web-view link that is not ours (issue 17.4)
    ("/no-such-page", 404, "Page not found"),
    ("/confirm/not-a-real-token", 400, "This link does not work"),
]


def test_information_and_error_pages_are_accessible(page: Page, live_server, axe):
    """The home, privacy, 404 and broken-link pages answer with the right status, fit the width and are axe-clean."""
    for path, status, heading in INFORMATION_AND_ERROR_PAGES:
        response = page.goto(path)
        assert response is not None and response.status == status, path
        expect(page.get_by_role("heading", level=1)).to_have_text(heading)
        assert_fits_width(page)
        axe(page)
