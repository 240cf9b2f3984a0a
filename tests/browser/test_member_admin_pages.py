"""J6 pages in headless Chromium at phone and desktop width, each checked with axe-core.

The admin logs in through the real form; the import uploads a real file, previews it
and applies it; confirmation mail goes to the real SMTP sink."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from mailer.extensions import db
from mailer.models import Member, MemberStatus
from mailer.worker.runner import run_tick_for_app
from support.factories import add_member

from .admin import log_in

pytestmark = pytest.mark.browser


@pytest.fixture
def make_app(make_app, tmp_path: Path):  # type: ignore[no-untyped-def]
    """The live server's app keeps uploaded imports in this test's directory, not in instance/."""

    def factory(**overrides):  # type: ignore[no-untyped-def]
        return make_app(**{"MAILER_IMPORT_DIR": str(tmp_path / "imports"), **overrides})

    return factory


def cells(table) -> list[list[str]]:  # type: ignore[no-untyped-def]
    """A table's text, row by row and cell by cell, as a reader meets it."""
    return table.evaluate("t => [...t.rows].map(r => [...r.cells].map(c => c.innerText.trim()))")


def test_search_filter_and_member_detail(page: Page, live_server, clock, axe):
    """Search by name, filter by status and group, open a member, unsubscribe and erase them; pages axe-clean."""
    with live_server.app.app_context():
        add_member("zoe@example.org", clock=clock, name="Zoë Parent", groups=[2])
        add_member("sam@example.org", clock=clock, name="Sam Carer", status=MemberStatus.PENDING, groups=[1])
        add_member("kim@example.org", clock=clock, name="Kim Carer", groups=[1, 3])
    log_in(page, live_server, clock)
    axe(page)  # the dashboard

    page.get_by_role("navigation", name="Admin").get_by_role("link", name="Members").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Members")
    members = page.get_by_role("table", name=re.compile("^All members"))
    expect(members.get_by_role("row")).to_have_count(4)  # header and three members

    page.get_by_label("Name or email address").fill("carer")
    page.get_by_label("Status").select_option(label="Waiting to confirm")
    page.get_by_role("button", name="Show members").click()
    found = page.get_by_role("table", name=re.compile("^Members matching your search"))
    expect(found.get_by_role("row")).to_have_count(2)
    expect(found.get_by_role("row").nth(1)).to_contain_text("sam@example.org")

    page.get_by_role("link", name="Clear the search").click()
    page.get_by_label("Group").select_option(label="Voice and Influence group")
    page.get_by_role("button", name="Show members").click()
    found = page.get_by_role("table", name=re.compile("^Members matching your search"))
    expect(found.get_by_role("row")).to_have_count(2)
    axe(page)

    found.get_by_role("link", name=re.compile("^Kim Carer")).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Kim Carer")
    profile = page.get_by_role("table", name="What we hold about this member")
    expect(profile).to_contain_text("Forum news, Voice and Influence group")
    page.get_by_role("button", name="Unsubscribe them").click()
    expect(page.get_by_role("status")).to_contain_text("kim@example.org is unsubscribed")
    expect(page.locator("#member-status")).to_have_text("Unsubscribed")
    expect(page.get_by_role("table", name="Consent history, oldest first")).to_contain_text("An admin, on their behalf")
    axe(page)

    page.get_by_role("link", name="Erase them").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Erase Kim Carer?")
    axe(page)
    page.get_by_role("button", name="Yes, erase them").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Members")
    expect(page.get_by_role("status")).to_contain_text("erased")
    with live_server.app.app_context():
        assert db.session.scalar(select(Member.id).where(Member.email == "kim@example.org")) is None


def test_import_preview_and_apply(page: Page, live_server, clock, smtp, axe, tmp_path: Path):
    """Upload a CSV, read what will happen row by row, apply it; the new pending person gets a confirmation."""
    with live_server.app.app_context():
        add_member("already@example.org", clock=clock)
    path = tmp_path / "sign-up sheet.csv"
    path.write_text(
        "Email,Name,Groups,Consent Date,Consent Source\r\n"
        "new@example.org,Nia New,Forum news,,\r\n"
        "sheet@example.org,Sol Sheet,,14/09/2025,Paper sheet at the coffee morning\r\n"
        "already@example.org,Al Ready,,,\r\n"
        "broken-address,Bo Broken,,,\r\n",
        encoding="utf-8",
    )
    log_in(page, live_server, clock)
    page.goto("/admin/members")
    page.get_by_role("link", name="Add members from a CSV file").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Add members from a CSV file")
    axe(page)

    page.get_by_role("button", name="Check the file").click()  # nothing chosen yet
    expect(page.get_by_role("alert")).to_contain_text("Choose the CSV file to upload.")
    expect(page.get_by_label("CSV file")).to_have_attribute("aria-invalid", "true")
    axe(page)

    page.get_by_label("CSV file").set_input_files(str(path))
    page.get_by_role("button", name="Check the file").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Check the import")
    assert cells(page.get_by_role("table", name="Each row of the file")) == [
        ["Line", "Email address", "What happens"],
        ["2", "new@example.org", "Will be added and sent an email asking them to confirm"],
        ["3", "sheet@example.org", "Will be added as members, using the consent evidence in the file"],
        ["4", "already@example.org", "Are already on the list and will not be changed"],
        ["5", "broken-address", "The email address is not valid"],
    ]
    expect(page.get_by_role("table", name="Rows with problems, by line number")).to_contain_text("broken-address")
    with live_server.app.app_context():
        assert db.session.scalar(select(Member.id).where(Member.email == "new@example.org")) is None
    axe(page)

    page.get_by_role("button", name="Import 2 new people").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Import finished")
    outcome = page.get_by_role("table", name=re.compile("^What happened"))
    expect(outcome).to_contain_text("Added and sent an email asking them to confirm")
    axe(page)
    run_tick_for_app(live_server.app)
    assert [r.rcpt_tos for r in smtp.wait_for(1)] == [["new@example.org"]]
    with live_server.app.app_context():
        statuses = dict(db.session.execute(select(Member.email, Member.status)).all())
    assert statuses == {"already@example.org": MemberStatus.MEMBER, "new@example.org": MemberStatus.PENDING,
                        "sheet@example.org": MemberStatus.MEMBER}
