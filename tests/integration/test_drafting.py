"""Write and see (V3, issue 18.4), tests to anyone (18.5), errors on the form (18.8) and the social-media question
(18.9), through the pages with the test client, on both databases."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flask_migrate import upgrade
from sqlalchemy import func, select, text

from integration.test_migrations import empty_database, old_app  # noqa: F401  (fixtures: a database at any revision)
from mailer.extensions import db
from mailer.models import (
    Announcement,
    AnnouncementState,
    JoinRequest,
    Member,
    OutboxMessage,
    SocialMedia,
    SocialMediaQuestion,
)
from mailer.worker.runner import run_tick_for_app
from support.factories import add_member, admin_post, compose, logged_in_admin
from support.mail import flat, parts
from support.web import csrf_token, join

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "samples"
REVISIT = (SAMPLES / "revisit-survey.md").read_text(encoding="utf-8")
JOINED_AT = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)


def token_of(client: Any, path: str = "/admin/announcements/new") -> str:
    return csrf_token(client.get(path).get_data(as_text=True))


def announcement_count(app: Any) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Announcement)) or 0


def test_preview_renders_the_unsaved_text_with_the_email_code(app, clock):
    """The live preview (18.4) is the email's own rendering of the text as typed: Markdown, the member's name
    placeholder filled as in the test email, the subject; and the reading-age hint names the longest sentences."""
    admin = logged_in_admin(app, clock)
    token = token_of(admin)
    response = admin.post(
        "/admin/drafting/preview",
        data={"csrf_token": token, "subject": "Hello {{ name }}", "body": REVISIT, "announcement_id": ""},
    )
    assert response.status_code == 200
    data = response.get_json()
    assert data["problem"] is None
    assert data["subject"] == "Hello parent or carer"
    assert "<h1" in data["html"] and "unsubscribe/example-link" in data["html"]
    assert data["reading"]["age"] is not None and len(data["reading"]["longest"]) == 2
    assert announcement_count(app) == 0, "a preview saves nothing"


def test_preview_names_a_misspelt_field_instead_of_failing(app, clock):
    """A misspelt {{ field }} is shown as a problem beside the preview (200 JSON), never an error page."""
    admin = logged_in_admin(app, clock)
    response = admin.post(
        "/admin/drafting/preview",
        data={"csrf_token": token_of(admin), "subject": "Hi", "body": "Dear {{ nmae }}", "announcement_id": ""},
    )
    assert response.status_code == 200
    assert "{{ nmae }} is not a field you can use" in response.get_json()["problem"]


def test_preview_without_csrf_token_is_refused(app, clock):
    """The preview is a POST like any form: without the CSRF token it is a 400."""
    admin = logged_in_admin(app, clock)
    response = admin.post("/admin/drafting/preview", data={"subject": "Hi", "body": "Hello"})
    assert response.status_code == 400


def test_preview_frame_allows_only_its_own_script(app, clock):
    """The frame the preview is written into (18.4): framed only by this site, its own script, inline styles;
    the compose page's Content-Security-Policy is unchanged (no inline script)."""
    admin = logged_in_admin(app, clock)
    frame = admin.get("/admin/drafting/frame")
    assert frame.status_code == 200
    policy = frame.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'self'" in policy and "unsafe-eval" not in policy
    assert frame.headers["X-Frame-Options"] == "SAMEORIGIN"
    page = admin.get("/admin/announcements/new")
    assert "'unsafe-inline'" not in page.headers["Content-Security-Policy"]
    html = page.get_data(as_text=True)
    assert not re.search(r"<script(?![^>]*\bsrc=)", html), "no inline script"
    assert "compose.js" in html and 'id="toolbar"' in html and "hidden" in html


def test_audience_count_follows_the_ticked_boxes(app, clock):
    """The count endpoint (18.4) answers with the engine's query for the boxes ticked, before saving."""
    with app.app_context():
        add_member("a@example.org", clock=clock, groups=[1])
        add_member("b@example.org", clock=clock, groups=[2], social_media=SocialMedia.NO)
        add_member("c@example.org", clock=clock, groups=[1, 2], social_media=SocialMedia.NO)
    admin = logged_in_admin(app, clock)
    assert admin.get("/admin/drafting/audience").get_json()["count"] == 3
    assert admin.get("/admin/drafting/audience?groups=1").get_json()["count"] == 2
    one = admin.get("/admin/drafting/audience?groups=1&only_without_social_media=y").get_json()
    assert (one["count"], one["members"]) == (1, "member")
    assert admin.get("/admin/drafting/audience?groups=999").status_code == 400
    assert admin.get("/admin/drafting/audience?groups=x").status_code == 400


def test_autosave_makes_one_draft_then_keeps_changing_it(app, clock):
    """Autosave (18.4): the first save makes a draft and gives its edit address; the next ones change the same
    draft, with "Saved at HH:MM" in UK time; an empty subject is not saved and says why."""
    admin = logged_in_admin(app, clock)
    token = token_of(admin)
    first = admin.post(
        "/admin/drafting/autosave",
        data={"csrf_token": token, "subject": "Draft one", "body": "Hello", "announcement_id": "", "groups": ["1"]},
    )
    assert first.status_code == 200, first.get_data(as_text=True)
    saved = first.get_json()
    assert saved["saved"] and re.fullmatch(r"Saved at \d\d:\d\d", saved["message"])
    assert saved["edit_url"] == f"/admin/announcements/{saved['id']}/edit"
    second = admin.post(
        "/admin/drafting/autosave",
        data={"csrf_token": token, "subject": "Draft one", "body": "Hello again", "announcement_id": str(saved["id"])},
    )
    assert second.get_json()["id"] == saved["id"]
    assert announcement_count(app) == 1
    with app.app_context():
        item = db.session.get(Announcement, saved["id"])
        assert item.body_markdown == "Hello again" and item.groups == []
    empty = admin.post(
        "/admin/drafting/autosave",
        data={"csrf_token": token, "subject": "", "body": "x", "announcement_id": str(saved["id"])},
    )
    assert empty.status_code == 400 and empty.get_json()["message"] == "Not saved yet: Enter a subject."
    page = admin.get(saved["edit_url"]).get_data(as_text=True)
    assert "Hello again" in page


def test_autosave_never_changes_a_scheduled_announcement(app, clock):
    """A scheduled announcement changes only on Save: autosave refuses (409) and changes nothing, so a half-typed
    edit can never go out."""
    admin = logged_in_admin(app, clock)
    with app.app_context():
        add_member("reader@example.org", clock=clock)  # an audience of nobody could not be sent
        db.session.commit()
    announcement_id = compose(admin, subject="Due soon", body="Original")
    page = f"/admin/announcements/{announcement_id}"
    assert admin_post(admin, page, f"{page}/send-now").status_code == 303
    response = admin.post(
        "/admin/drafting/autosave",
        data={"csrf_token": token_of(admin), "subject": "Due soon", "body": "Half-typ",
              "announcement_id": str(announcement_id)},
    )
    assert response.status_code == 409 and not response.get_json()["saved"]
    with app.app_context():
        item = db.session.get(Announcement, announcement_id)
        assert item.body_markdown == "Original" and item.state is AnnouncementState.SCHEDULED
    edit = admin.get(f"{page}/edit").get_data(as_text=True)
    assert 'data-autosave="off"' in edit


def test_compose_page_shows_reading_age_and_what_the_filter_counts_without_javascript(app, clock):
    """Without JavaScript the page still has the reading-age hint with the two longest sentences, and says which
    answers the social-media filter counts, with both wordings and how many of each (18.4, 18.9)."""
    with app.app_context():
        member_id = add_member("old@example.org", clock=clock, social_media=SocialMedia.NO)
        db.session.get(Member, member_id).social_media_question = SocialMediaQuestion.FOLLOWS_FORUM
        db.session.commit()
        add_member("new@example.org", clock=clock, social_media=SocialMedia.NO)
    admin = logged_in_admin(app, clock)
    announcement_id = compose(admin, subject="Revisit", body=REVISIT)
    page = admin.get(f"/admin/announcements/{announcement_id}/edit").get_data(as_text=True)
    assert re.search(r"Reading age about \d+", page) and "The longest sentences:" in page
    assert "Do you use social media, such as Facebook, Instagram or WhatsApp groups?" in page
    assert "Do you follow the forum on social media?" in page
    assert '<span id="social-current-count">1</span>' in page and '<span id="social-earlier-count">1</span>' in page


def test_a_test_goes_to_the_typed_addresses_with_the_chosen_members_details(app, clock, smtp):
    """Tests to anyone (18.5): up to five typed addresses each get one test, "[Test]" in the subject, filled in with
    the member chosen in the preview (their name, not "parent or carer"); the member gets nothing."""
    with app.app_context():
        member_id = add_member("zoe@example.org", clock=clock, name="Zoë Parent", groups=[1])
    admin = logged_in_admin(app, clock)
    announcement_id = compose(admin, subject="Hello {{ name }}", body="Dear {{ name }},\n\nNews for {{ groups }}.")
    page = f"/admin/announcements/{announcement_id}/test"
    form = admin.get(f"{page}?sample={member_id}").get_data(as_text=True)
    assert f'<option selected value="{member_id}">' in form or f'value="{member_id}" selected' in form
    response = admin.post(page, data={
        "csrf_token": csrf_token(form), "addresses": "one@example.org\nTwo@Example.org, one@example.org",
        "sample": str(member_id),
    })
    assert response.status_code == 303, response.get_data(as_text=True)[:2000]
    run_tick_for_app(app)
    received = smtp.wait_for(2)
    assert sorted(r.rcpt_tos[0] for r in received) == ["Two@example.org", "one@example.org"]
    for message in received:
        assert flat(message.message["Subject"]) == "[Test] Hello Zoë Parent"
        assert "Dear Zoë Parent" in parts(message.message)[0]


def test_a_test_to_nobody_typed_goes_to_me_as_before(app, clock, smtp):
    """The announcement page's "Send a test to me" button still sends one test to the admin, with no member's data."""
    admin = logged_in_admin(app, clock)
    announcement_id = compose(admin, subject="Hello {{ name }}", body="Dear {{ name }}")
    page = f"/admin/announcements/{announcement_id}"
    assert admin_post(admin, page, f"{page}/test").status_code == 303
    run_tick_for_app(app)
    (message,) = smtp.wait_for(1)
    assert message.rcpt_tos == ["admin@forum.example"]
    assert flat(message.message["Subject"]) == "[Test] Hello parent or carer"


def test_bad_test_addresses_come_back_on_the_same_page_and_send_nothing(app, clock, smtp):
    """Six addresses, or one that is not an address, are named in an error summary on the test page (with the admin
    menu), 400, and nothing is queued."""
    admin = logged_in_admin(app, clock)
    announcement_id = compose(admin, subject="News", body="Hello")
    page = f"/admin/announcements/{announcement_id}/test"
    six = "\n".join(f"p{i}@example.org" for i in range(6))
    for typed, words in ((six, "Enter at most 5 email addresses. You entered 6."),
                         ("ok@example.org\nnot-an-address", "“not-an-address” is not a valid email address")):
        response = admin.post(page, data={"csrf_token": token_of(admin, page), "addresses": typed, "sample": ""})
        html = response.get_data(as_text=True)
        assert response.status_code == 400
        assert 'class="error-summary"' in html and words in html and 'aria-label="Admin"' in html
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(OutboxMessage)) == 0


def test_test_sends_are_rate_limited_per_admin(make_app, clock, smtp):
    """Test sends count against MAILER_TEST_SEND_RATE_LIMIT, one per address: past it, a 429 and nothing queued."""
    app = make_app(MAILER_TEST_SEND_RATE_LIMIT="3 per hour", RATELIMIT_ENABLED=True)
    admin = logged_in_admin(app, clock)
    announcement_id = compose(admin, subject="News", body="Hello")
    page = f"/admin/announcements/{announcement_id}/test"
    two = "a@example.org\nb@example.org"
    assert admin.post(page, data={"csrf_token": token_of(admin, page), "addresses": two}).status_code == 303
    refused = admin.post(page, data={"csrf_token": token_of(admin, page), "addresses": two})
    assert refused.status_code == 429
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(OutboxMessage)) == 2


def test_join_form_asks_whether_they_use_social_media_and_records_the_wording(app, clock, smtp):
    """The join form asks the filter's question (18.9: "Do you use social media, such as Facebook, Instagram or
    WhatsApp groups?", radio buttons kept) and the answer records which wording it was given to."""
    client = app.test_client()
    page = client.get("/join").get_data(as_text=True)
    assert "<legend>Do you use social media, such as Facebook, Instagram or WhatsApp groups?</legend>" in page
    assert 'type="radio"' in page
    assert join(client, email="new@example.org", social_media="no").status_code in (200, 303)
    with app.app_context():
        (request,) = db.session.scalars(select(JoinRequest)).all()
        assert request.social_media_question is SocialMediaQuestion.USES_SOCIAL_MEDIA
    run_tick_for_app(app)
    with app.app_context():
        member = db.session.scalar(select(Member).where(Member.email == "new@example.org"))
        assert member.social_media is SocialMedia.NO
        assert member.social_media_question is SocialMediaQuestion.USES_SOCIAL_MEDIA


def test_preferences_say_the_earlier_question_and_saving_records_the_new_one(app, clock):
    """A member who answered the earlier wording sees it named on their preferences page; saving answers the
    current wording, and the change is recorded in their consent history and data download (18.9)."""
    from mailer.mail.tokens import Purpose, make_token
    from mailer.models import ConsentAction, ConsentEvent

    with app.app_context():
        member_id = add_member("old@example.org", clock=clock, social_media=SocialMedia.NO)
        member = db.session.get(Member, member_id)
        member.social_media_question = SocialMediaQuestion.FOLLOWS_FORUM
        db.session.commit()
        token = make_token(app.config["SECRET_KEY"], Purpose.PREFERENCES, member.link_key, member.token_version,
                           clock=clock)
    client = app.test_client()
    path = f"/preferences/{token}"
    page = client.get(path).get_data(as_text=True)
    assert "When you joined we asked a different question: “Do you follow the forum on social media?”" in page
    response = client.post(path, data={"csrf_token": csrf_token(page), "name": "Old", "social_media": "no"})
    assert response.status_code == 200
    assert "When you joined we asked" not in response.get_data(as_text=True)
    with app.app_context():
        member = db.session.get(Member, member_id)
        assert member.social_media_question is SocialMediaQuestion.USES_SOCIAL_MEDIA
        event = db.session.scalars(select(ConsentEvent).where(ConsentEvent.action == ConsentAction.PREFERENCES)).one()
        assert event.detail["social_media_question"] == {"from": "follows_forum", "to": "uses_social_media"}
    data = client.get(f"{path}/data.json").get_json()
    assert data["profile"]["social_media_question"].startswith("Do you use social media")


def test_upgrade_keeps_the_old_wording_for_answers_given_before(old_app):  # noqa: F811  (the fixture)
    """Migration 0020 (18.9): members and waiting join requests from before name the old wording; rows made after
    the upgrade name the new one."""
    with old_app.app_context():
        upgrade(revision="0019")
        db.session.execute(text(
            "INSERT INTO member (email, email_key, link_key, name, status, social_media, token_version, bounce_count, "
            "created_at, updated_at) VALUES ('a@example.org', 'a@example.org', 'k1', 'A', 'member', 'no', 1, 0, "
            "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
        ))
        db.session.execute(text(
            "INSERT INTO join_request (email, name, social_media, group_ids, created_at) "
            "VALUES ('b@example.org', 'B', 'no', '[]', CURRENT_TIMESTAMP)"
        ))
        db.session.commit()
        upgrade()
        assert db.session.scalar(select(Member.social_media_question)) is SocialMediaQuestion.FOLLOWS_FORUM
        assert db.session.scalar(select(JoinRequest.social_media_question)) is SocialMediaQuestion.FOLLOWS_FORUM
        db.session.add(JoinRequest(email="c@example.org", name="C", social_media=SocialMedia.NO, group_ids=[],
                                   created_at=JOINED_AT))
        db.session.commit()
        newest = db.session.scalars(select(JoinRequest).order_by(JoinRequest.id.desc())).first()
        assert newest.social_media_question is SocialMediaQuestion.USES_SOCIAL_MEDIA
        db.session.remove()


def test_a_time_in_the_past_is_shown_with_the_admin_menu_and_an_error_summary(app, clock):
    """Errors on the form (18.8): a schedule time in the past, or a date that does not exist, comes back on the
    announcement's own page (400) with the admin menu, an error summary linking to the field, the message beside the
    field and what was typed still in it; nothing changes."""
    admin = logged_in_admin(app, clock)
    announcement_id = compose(admin, subject="News", body="Hello")
    page = f"/admin/announcements/{announcement_id}"
    response = admin_post(admin, page, f"{page}/schedule", {"send_date": "2020-01-01", "send_time": "10:00"})
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert 'aria-label="Admin"' in html and 'class="error-summary"' in html and "Choose a time in the future." in html
    assert '<a href="#send_time">Choose a time in the future.</a>' in html and 'id="send_time-error"' in html
    assert 'value="2020-01-01"' in html and "<h1>News</h1>" in html and "<title>Error: News" in html
    bad_date = admin_post(admin, page, f"{page}/schedule", {"send_date": "31/02/2027", "send_time": "10:00"})
    bad = bad_date.get_data(as_text=True)
    assert bad_date.status_code == 400 and 'aria-label="Admin"' in bad and 'id="send_date-error"' in bad
    assert "<h1>News</h1>" in bad
    with app.app_context():
        assert db.session.get(Announcement, announcement_id).state is AnnouncementState.DRAFT


def test_error_pages_inside_admin_keep_the_menu_and_public_ones_do_not(app, clock):
    """The generic error pages (18.8): a 404 inside /admin/ keeps the admin menu and links to the dashboard; a
    public 404 links to the home page and shows no admin menu."""
    admin = logged_in_admin(app, clock)
    inside = admin.get("/admin/announcements/999999")
    html = inside.get_data(as_text=True)
    assert inside.status_code == 404
    assert 'aria-label="Admin"' in html and "Go to the dashboard" in html and "Page not found" in html
    outside = admin.get("/no-such-page")
    public = outside.get_data(as_text=True)
    assert outside.status_code == 404 and 'aria-label="Admin"' not in public and "Go to the home page" in public


def test_back_after_an_import_keeps_the_admin_menu(app, clock, tmp_path):
    """A Back after an import (18.8): the applied upload is gone, so its pages say so with the admin menu, an error
    summary and links back to importing and to the dashboard, a 400 and no bare page."""
    admin = logged_in_admin(app, clock)
    gone = "A" * 22
    for response in (admin.get(f"/admin/members/import/{gone}"),
                     admin_post(admin, "/admin/members/import", f"/admin/members/import/{gone}/apply")):
        html = response.get_data(as_text=True)
        assert response.status_code == 400
        assert 'aria-label="Admin"' in html and 'class="error-summary"' in html
        assert "That import is no longer waiting" in html
        assert 'href="/admin/members/import">Back to importing members' in html and "Go to the dashboard" in html
