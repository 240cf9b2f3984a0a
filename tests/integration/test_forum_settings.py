"""V6 forum details (issue 20 part 2) at /admin/settings: stored in the database over the configured values;
a change shows on the next page and in the next email, through the real SMTP sink; bad input is refused."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from mailer.extensions import db
from mailer.members.forum_details import forum_details
from mailer.models import Announcement, ForumDetailsRow
from mailer.settings import settings_of
from mailer.worker.runner import run_tick_for_app
from support.factories import add_member, admin_post, compose, logged_in_admin
from support.mail import flat, parts
from support.web import join, join_and_confirm

SETTINGS = "/admin/settings"
NEW = {
    "forum_name": "Northshire Parent Carer Forum",
    "contact_address": "info@northshire.example",
    "privacy_notice_url": "https://northshire.example/privacy",
    "footer_line": "Registered charity number 1234567",
    "undo_seconds": "30",
}


def save(client: Any, **changes: str) -> Any:
    return admin_post(client, SETTINGS, SETTINGS, {**NEW, **changes})


def test_the_page_shows_the_configured_values_until_an_owner_saves(app, clock):
    """V6: with nothing stored, the form holds the configuration's values, the undo window MAILER_UNDO_SECONDS."""
    client = logged_in_admin(app, clock)
    page = client.get(SETTINGS).get_data(as_text=True)
    assert 'value="Test Parent Carer Forum"' in page and 'value="hello@forum.test"' in page
    assert f'value="{settings_of(app).undo_seconds}"' in page
    with app.app_context():
        assert db.session.get(ForumDetailsRow, 1) is None
        db.session.remove()


def test_a_change_shows_on_the_next_page_and_in_the_next_email(app, clock, smtp):
    """V6: after saving, the next page shows the new name, contact address, privacy link and footer line; the
    next confirmation email (built by the worker's next tick, sent to the real SMTP sink) says them too."""
    client = logged_in_admin(app, clock)
    response = save(client)
    assert response.status_code == 303
    page = app.test_client().get("/join").get_data(as_text=True)
    assert "Northshire Parent Carer Forum" in page and "Test Parent Carer Forum" not in page
    assert 'href="mailto:info@northshire.example"' in page
    assert 'href="https://northshire.example/privacy"' in page
    assert "Registered charity number 1234567" in page
    assert "Yes, I want Northshire Parent Carer Forum to email me" in page  # the consent wording follows

    join(app.test_client(), email="parent@example.org")
    run_tick_for_app(app)
    message = smtp.wait_for(1)[0].message
    assert message["Subject"] == "Please confirm you want to join Northshire Parent Carer Forum"
    assert message["Reply-To"] == "info@northshire.example"
    text_part, html_part = parts(message)
    assert "Registered charity number 1234567" in flat(text_part)
    assert "Registered charity number 1234567" in html_part
    assert "info@northshire.example" in text_part

    with app.app_context():
        details = forum_details(db.session, settings_of(app))
        db.session.remove()
    assert (details.forum_name, details.undo_seconds) == ("Northshire Parent Carer Forum", 30)


def test_announcements_carry_the_new_footer_and_name(app, clock, smtp):
    """V6: an announcement sent after the change has the footer line and the new name in its footer."""
    client = logged_in_admin(app, clock)
    join_and_confirm(app, app.test_client(), smtp, "sam@example.org")
    save(client, footer_line="Charity no. 1234567 - [not a link](https://evil.example)", undo_seconds="0")
    item = compose(client, subject="News", body="Hello.")
    admin_post(client, f"/admin/announcements/{item}", f"/admin/announcements/{item}/send-now")
    before = len(smtp.received)
    run_tick_for_app(app)
    message = smtp.wait_for(before + 1)[before].message
    text_part, html_part = parts(message)
    assert "Charity no. 1234567 - [not a link](https://evil.example)" in flat(text_part)
    assert "[not a link](" in html_part and ">not a link</a>" not in html_part  # shown as typed, not Markdown
    assert "You are getting this email from Northshire Parent Carer Forum" in flat(text_part)
    assert "Northshire Parent Carer Forum" in message["List-Id"]


def test_emptying_a_field_goes_back_to_the_configured_value(app, clock):
    """V6: an empty name or contact address means "as configured"; an empty privacy link means the built-in page."""
    client = logged_in_admin(app, clock)
    save(client)
    response = save(client, forum_name="", contact_address="", privacy_notice_url="", footer_line="")
    assert response.status_code == 303
    page = app.test_client().get("/").get_data(as_text=True)
    assert "Test Parent Carer Forum" in page and 'href="mailto:hello@forum.test"' in page
    assert 'href="/privacy"' in page and "charity" not in page
    with app.app_context():
        row = db.session.get(ForumDetailsRow, 1)
        assert row is not None and (row.forum_name, row.contact_address, row.undo_seconds) == (None, None, 30)
        db.session.remove()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("forum_name", "x" * 300, "The forum&#39;s name must be 100 characters or fewer."),
        ("contact_address", "not an address", "Enter the contact address as an email address"),
        ("privacy_notice_url", "javascript:alert(1)", "Enter the privacy notice link as a web address"),
        ("footer_line", "y" * 201, "The footer line must be 200 characters or fewer."),
        ("undo_seconds", "601", "Enter a whole number of seconds from 0 to 600."),
        ("undo_seconds", "-1", "Enter a whole number of seconds from 0 to 600."),
        ("undo_seconds", "abc", "Enter a whole number of seconds from 0 to 600."),
    ],
)
def test_bad_input_is_refused_with_a_clear_message_and_changes_nothing(app, clock, field, value, message):
    """V6: each bad value gets a 400 with its message on the form; nothing is stored."""
    client = logged_in_admin(app, clock)
    response = save(client, **{field: value})
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert message in page and "There is a problem" in page
    with app.app_context():
        assert db.session.get(ForumDetailsRow, 1) is None
        db.session.remove()


def test_the_undo_window_an_owner_sets_is_the_one_a_send_waits(app, clock):
    """V1, V6: after an owner sets the undo window to 45 seconds, "Send now" confirmed on the check page starts
    45 seconds later (MAILER_UNDO_SECONDS is 0 in these tests), and the page says so."""
    client = logged_in_admin(app, clock)
    assert save(client, undo_seconds="45").status_code == 303
    with app.app_context():
        add_member("parent@example.org", clock=clock)
        db.session.commit()
    announcement_id = compose(client, subject="Undo window", body="Hello.")
    page = f"/admin/announcements/{announcement_id}"
    assert admin_post(client, page, f"{page}/send-now").status_code == 303
    with app.app_context():
        item = db.session.get(Announcement, announcement_id)
        assert item is not None and item.scheduled_at == clock.now() + timedelta(seconds=45)
