"""E5, E7: every kind of email, as it arrived at the real SMTP sink, opened in headless Chromium at 320, 375
and 600 px: never wider than the screen, axe-clean (WCAG 2.2 A/AA and best practices, landmarks too), the
confirmation button large enough to tap, and dark mode readable. The public archive page of the same
announcement fits a phone too."""

from __future__ import annotations

from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any, Literal

import pytest
from axe_playwright_python.sync_playwright import Axe  # type: ignore[import-untyped]
from conftest import base_config  # tests/conftest.py
from flask import Flask
from playwright.sync_api import Browser, Page

from mailer import create_app
from mailer.clock import FrozenClock
from mailer.extensions import db
from mailer.worker.runner import run_tick_for_app
from support.factories import add_member, admin_post, compose, logged_in_admin
from support.mail import parts
from support.smtp_sink import SmtpSink
from support.web import csrf_token, join, path_of, post_button

pytestmark = pytest.mark.browser

WIDTHS = (320, 375, 600)
LONG_URL = (
    "https://www.gov.uk/government/publications/send-and-alternative-provision-improvement-plan/"
    "send-and-alternative-provision-improvement-plan-right-support-right-place-right-time?utm_source=council"
)
LONG_WORD = "Supercalifragilisticexpialidocious" * 4
TABLE = (
    "| School or setting | Contact for the Local Offer | Telephone | Opening hours |\n"
    "|---|---|---|---|\n"
    "| Greenfield Community Primary School | localoffer.enquiries@greenfield-primary.example.org | 01234 567890 |"
    " Monday to Friday, 8:30am to 4pm |\n"
    "| Riverside Academy | send.coordinator@riverside-academy.example.org | 01234 098765 | Term time only |\n"
)
CONTRAST_ONLY = {"runOnly": {"type": "rule", "values": ["color-contrast", "link-in-text-block"]},
                 "resultTypes": ["violations"]}
BODIES = {
    "long-url": f"# Council letter\n\nRead the plan here: {LONG_URL}\n\nThank you.",
    "table": f"# Who to contact\n\n{TABLE}",
    "long-word": f"# A long word\n\nThe children's favourite word this term: {LONG_WORD}.",
}


def last_message(smtp: Any, count: int) -> EmailMessage:
    message: EmailMessage = smtp.wait_for(count)[count - 1].message
    return message


def send_every_kind(app: Flask, client: Any, smtp: SmtpSink, clock: FrozenClock) -> dict[str, str]:
    """The HTML part of every kind of email, each made through the app's own pages and sent over SMTP."""
    found: dict[str, EmailMessage] = {}
    email = "pat.long-surname@example.org"
    join(client, email=email, name="Patricia Montgomery-Fitzwilliam-Hargreaves")
    run_tick_for_app(app)
    found["confirm"] = last_message(smtp, 1)
    confirm_url = next(u for u in parts(found["confirm"])[0].split() if "/confirm/" in u).strip("()")
    assert post_button(client, path_of(confirm_url)).status_code == 200
    run_tick_for_app(app)
    found["welcome"] = last_message(smtp, 2)
    clock.advance(days=1)  # mails a stranger can trigger go out at most once per address per interval
    join(app.test_client(), email=email, name="Pat")
    run_tick_for_app(app)
    found["already-member"] = last_message(smtp, 3)
    clock.advance(days=1)
    outsider = app.test_client()
    page = outsider.get("/preferences")
    outsider.post("/preferences", data={"csrf_token": csrf_token(page.get_data(as_text=True)), "email": email})
    run_tick_for_app(app)
    found["preferences-link"] = last_message(smtp, 4)
    with app.app_context():
        add_member("second.reader@example.org", clock=clock)
    admin = logged_in_admin(app, clock)
    count = 4
    for name, body in BODIES.items():
        announcement_id = compose(admin, subject=f"Announcement: {name}", body=body)
        page_path = f"/admin/announcements/{announcement_id}"
        admin_post(admin, page_path, f"{page_path}/send-now")
        run_tick_for_app(app)
        count += 2  # to both members
        found[f"announcement-{name}"] = last_message(smtp, count)
    test_id = compose(admin, subject="Everything at once", body="\n\n".join(BODIES.values()))
    page_path = f"/admin/announcements/{test_id}"
    admin_post(admin, page_path, f"{page_path}/test")
    run_tick_for_app(app)
    found["test"] = last_message(smtp, count + 1)
    assert found["test"]["Subject"].startswith("[Test]")
    return {name: parts(message)[1] for name, message in found.items()}


@pytest.fixture(scope="module")
def emails(database_factory: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Every kind of email, sent once for this module (its own SQLite database, SMTP sink and frozen clock):
    the tests below only read them, so they need not be sent again for each."""
    clock = FrozenClock()
    with SmtpSink() as smtp:
        app = create_app(base_config(database_factory.sqlite(tmp_path_factory.mktemp("emails")), smtp))
        app.extensions["mailer.clock"] = clock
        try:
            return send_every_kind(app, app.test_client(), smtp, clock)
        finally:
            with app.app_context():
                db.session.remove()
                db.engine.dispose()


@pytest.fixture
def open_email(browser: Browser) -> Iterator[Any]:
    """Opens an email's HTML in a fresh page of the given width (and colour scheme), as a webmail would."""
    contexts = []

    def opener(html: str, width: int, color_scheme: Literal["light", "dark"] = "light") -> Page:
        context = browser.new_context(
            viewport={"width": width, "height": 800}, is_mobile=width < 600, color_scheme=color_scheme
        )
        contexts.append(context)
        page = context.new_page()
        page.set_content(html, wait_until="load")
        return page

    yield opener
    for context in contexts:
        context.close()


def test_every_email_fits_a_phone_and_is_accessible(emails: dict[str, str], open_email: Any, axe: Any) -> None:
    """At 320, 375 and 600 px no email is wider than the screen (long link, long word, table, long name)
    and axe-core finds no violation, including landmark-one-main and region."""
    assert len(emails) == 8
    for name, html in emails.items():
        for width in WIDTHS:
            page = open_email(html, width)
            scroll_width = page.evaluate("document.documentElement.scrollWidth")
            assert scroll_width <= width, f"{name} is {scroll_width} px wide on a {width} px screen"
            axe(page)
            page.context.close()


def test_long_bare_url_shows_its_host_and_keeps_the_whole_href(emails: dict[str, str], open_email: Any) -> None:
    """The council letter's long link shows as host + start of path + "…" and still goes to the whole URL."""
    page = open_email(emails["announcement-long-url"], 320)
    link = page.locator("a", has_text="www.gov.uk/")
    assert link.count() == 1
    assert link.get_attribute("href") == LONG_URL
    assert link.inner_text().endswith("…") and len(link.inner_text()) <= 40


def test_confirmation_button_is_large_labelled_and_followed_by_the_link(emails: dict[str, str],
                                                                        open_email: Any) -> None:
    """The confirmation email's button says what it does, is at least 44 px high and the whole row wide
    enough to tap, has good contrast (axe), and the same link is written out below it."""
    for width in WIDTHS:
        page = open_email(emails["confirm"], width)
        button = page.get_by_role("link", name="Confirm my membership")
        box = button.bounding_box()
        assert box is not None and box["height"] >= 44 and box["width"] >= 44
        href = button.get_attribute("href") or ""
        assert href.startswith("https://forum.test/confirm/")
        written = page.locator("a", has_text=href)
        assert written.count() == 1 and written.get_attribute("href") == href
        assert written.bounding_box()["y"] > box["y"] + box["height"]
        page.context.close()


def test_dark_mode_is_dark_and_readable(emails: dict[str, str], open_email: Any) -> None:
    """With the phone in dark mode every email turns dark (the kept @media rule applies), still fits, and axe's
    colour-contrast checks pass."""
    for name, html in emails.items():
        page = open_email(html, 320, color_scheme="dark")
        background = page.evaluate(
            "getComputedStyle(document.querySelector('[role=main]').closest('td')).backgroundColor"
        )
        assert background == "rgb(30, 30, 30)", f"{name}: {background}"
        assert page.evaluate("document.documentElement.scrollWidth") <= 320
        results = Axe().run(page, options=CONTRAST_ONLY)
        assert results.violations_count == 0, f"{name} in dark mode\n{results.generate_report()}"
        page.context.close()


def test_archive_page_of_a_long_announcement_fits_a_phone(live_server: Any, clock: Any, smtp: Any, browser: Browser,
                                                          axe: Any) -> None:
    """The public archive page of an announcement with a long link, a long word and a wide table is never wider
    than a 320 or 375 px screen, and axe-clean."""
    app = live_server.app
    with app.app_context():
        add_member("reader@example.org", clock=clock)
    admin = logged_in_admin(app, clock)
    announcement_id = compose(admin, subject="Everything at once", body="\n\n".join(BODIES.values()))
    page_path = f"/admin/announcements/{announcement_id}"
    admin_post(admin, page_path, f"{page_path}/send-now")
    run_tick_for_app(app)
    smtp.wait_for(1)
    admin_post(admin, page_path, f"{page_path}/publish", {"public": "1"})
    for width in (320, 375):
        context = browser.new_context(
            base_url=live_server.url, viewport={"width": width, "height": 800}, is_mobile=True
        )
        try:
            page = context.new_page()
            assert page.goto(f"/archive/{announcement_id}").status == 200  # type: ignore[union-attr]
            assert page.locator("a", has_text="www.gov.uk/").get_attribute("href") == LONG_URL
            scroll_width = page.evaluate("document.documentElement.scrollWidth")
            assert scroll_width <= width, f"the archive page is {scroll_width} px wide on a {width} px screen"
            axe(page)
        finally:
            context.close()


def test_preheader_is_hidden_and_the_web_view_fits_and_is_accessible(
    live_server: Any, clock: Any, smtp: Any, browser: Browser, axe: Any
) -> None:
    """Issue 17.3 and 17.4: in the email the preheader is neither shown nor in the accessibility tree, and
    "View in your browser" is the first link; the web view it opens is axe-clean at 320 px and 1024 px,
    fits the phone, and shows no member's name."""
    app = live_server.app
    with app.app_context():
        add_member("reader@example.org", name="Robin Reader", clock=clock)
    admin = logged_in_admin(app, clock)
    body = "# Council letter\n\nDear {{ name }}, the council wrote to us. " + BODIES["long-url"]
    announcement_id = compose(admin, subject="Council letter", body=body)
    page_path = f"/admin/announcements/{announcement_id}"
    admin_post(admin, page_path, f"{page_path}/send-now")
    run_tick_for_app(app)
    text, html = parts(smtp.wait_for(1)[0].message)
    context = browser.new_context(viewport={"width": 320, "height": 800}, is_mobile=True)
    try:
        email = context.new_page()
        email.set_content(html, wait_until="load")
        assert not email.locator(".preheader").is_visible()
        tree = email.locator("body").aria_snapshot()  # what a screen reader gets: the sentence once
        assert tree.count("the council wrote to us") == 1 and "\u034f" not in tree
        first = email.get_by_role("link").first
        assert first.inner_text() == "View in your browser"
        url = first.get_attribute("href") or ""
    finally:
        context.close()
    assert url.startswith(f"{live_server.url}/archive/view/") and url in text
    for width in (320, 1024):
        context = browser.new_context(
            base_url=live_server.url, viewport={"width": width, "height": 800}, is_mobile=width < 600
        )
        try:
            page = context.new_page()
            assert page.goto(path_of(url)).status == 200  # type: ignore[union-attr]
            assert "Robin" not in page.content() and "Dear parent or carer" in page.content()
            assert page.evaluate("document.documentElement.scrollWidth") <= width
            axe(page)
        finally:
            context.close()
