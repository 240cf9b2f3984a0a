"""Issue 4 and 6 pages in headless Chromium at phone and desktop width, each checked with axe-core:
an admin composes, previews, tests, schedules and watches a send to the end; a member changes
their details, downloads their data and erases themselves."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import func, select

from mailer.extensions import db
from mailer.mail.tokens import Purpose, make_token
from mailer.models import Member, Suppression
from mailer.worker.runner import run_tick_for_app
from support.factories import ADMIN_EMAIL, add_member, link_key_of

from .admin import log_in

pytestmark = pytest.mark.browser
SAMPLE = (Path(__file__).resolve().parents[1] / "data" / "samples" / "revisit-survey.md").read_text(encoding="utf-8")


def test_compose_preview_test_schedule_and_watch_it_send(page: Page, live_server, clock, smtp, axe):
    """Log in, write the sample announcement, preview both parts, send a test, schedule it, and see it sent."""
    clock.set(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    with live_server.app.app_context():
        for i in range(3):
            add_member(f"parent{i}@example.org", clock=clock, groups=[1])
    log_in(page, live_server, clock)
    page.get_by_role("navigation", name="Admin").get_by_role("link", name="New announcement").click()
    axe(page)
    page.get_by_label("Subject").fill("Inspectors are coming back: have your say by 10 May")
    page.get_by_label("Message").fill(SAMPLE)
    page.get_by_role("button", name="Save draft").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Inspectors are coming back: have your say by 10 May")
    expect(page.get_by_text("reaches 3 confirmed members right now")).to_be_visible()
    expect(page.locator("pre.preview-text")).to_contain_text("Online survey")
    expect(page.frame_locator("iframe.preview").get_by_role("heading", level=1)).to_contain_text(
        "Inspectors are coming"
    )
    axe(page)

    page.get_by_role("button", name="Send a test to me").click()
    expect(page.get_by_role("status")).to_contain_text("A test email is on its way")
    run_tick_for_app(live_server.app)
    test_mail = smtp.wait_for(1)[0]
    assert test_mail.rcpt_tos == [ADMIN_EMAIL]
    assert test_mail.message["Subject"].startswith("[Test] ")

    page.get_by_label("Date").fill("2026-03-03")
    page.get_by_label("Time (UK time)").fill("10:00")
    page.get_by_role("button", name="Schedule", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Check before you schedule")  # issue 18 (V1)
    expect(page.get_by_text("Tomorrow at 10:00 (UK time)")).to_be_visible()
    axe(page)
    page.get_by_role("button", name="Schedule for 3 members").click()
    expect(page.get_by_role("status")).to_contain_text("Scheduled for Tuesday 3 March 2026 at 10:00")
    expect(page.locator("#state")).to_have_text("Scheduled")
    axe(page)

    clock.set(datetime(2026, 3, 3, 10, 0, 5, tzinfo=UTC))
    run_tick_for_app(live_server.app)
    assert len(smtp.wait_for(4)) == 4
    announcement_url = page.url
    log_in(page, live_server, clock)  # back the next day: the idle session has ended (issue 15)
    page.goto(announcement_url)
    expect(page.locator("#state")).to_have_text("Sent")
    expect(page.locator("#progress")).to_contain_text("3 sent, 0 waiting, 0 failed")
    axe(page)
    page.get_by_role("link", name="Who was sent what").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Who was sent")
    expect(page.get_by_role("cell", name="parent0@example.org", exact=False)).to_be_visible()
    axe(page)


def test_member_changes_details_downloads_data_and_erases(page: Page, live_server, clock, axe):
    """The preferences page saves changes, the download holds the member's data, erasure removes them."""
    with live_server.app.app_context():
        member_id = add_member("pat@example.org", clock=clock, name="Pat", groups=[1])
        token = make_token(
            live_server.app.config["SECRET_KEY"],
            Purpose.PREFERENCES,
            link_key_of(live_server.app, member_id),
            1,
            clock=clock,
        )
    page.goto(f"/preferences/{token}")
    expect(page.get_by_role("heading", level=1)).to_have_text("Your details")
    axe(page)
    page.get_by_label("Name").fill("Patricia")
    page.get_by_label("Voice and Influence group").check()
    page.get_by_label("No", exact=True).check()
    page.get_by_role("button", name="Save changes").click()
    expect(page.get_by_role("status")).to_contain_text("Your changes are saved.")
    expect(page.get_by_label("Name")).to_have_value("Patricia")
    axe(page)

    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download everything we hold about you (JSON file)").click()
    data = json.loads(Path(download_info.value.path()).read_text(encoding="utf-8"))
    assert data["profile"]["name"] == "Patricia"
    assert data["profile"]["groups"] == ["Forum news", "Voice and Influence group"]
    assert data["consent_history"][-1]["action"] == "preferences"

    page.get_by_role("link", name="Erase your details").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Erase your details")
    axe(page)
    page.get_by_role("button", name="Erase my details").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Your details are erased")
    axe(page)
    with live_server.app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Member)) == 0
        assert db.session.scalar(select(Suppression.reason)) == "erased"
