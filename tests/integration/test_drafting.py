"""Write and see (V3, issue 18.4), tests to anyone (18.5), errors on the form (18.8) and the social-media question
(18.9), through the pages with the test client, on both databases."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

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
