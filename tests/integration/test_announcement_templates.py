"""Issue 9, announcement templates: the shipped starters exist, templates round trip through the pages,
a draft copies a template, misspelt fields are refused, and deleting asks first."""

from __future__ import annotations

from sqlalchemy import select

from mailer.extensions import db
from mailer.models import Announcement, AnnouncementState, AnnouncementTemplate
from support.factories import admin_post, logged_in_admin

STARTERS = ["Forward a letter", "Join a working group", "Meeting invitation", "Survey closing soon"]


def template_id(app, name: str) -> int:  # type: ignore[no-untyped-def]
    with app.app_context():
        return db.session.scalar(select(AnnouncementTemplate.id).where(AnnouncementTemplate.name == name))


def test_the_four_starting_templates_are_shipped_and_valid(app, clock):
    """The migration seeds the four plain-English starters; each can be used and its draft saved unchanged."""
    admin = logged_in_admin(app, clock)
    page = admin.get("/admin/templates").get_data(as_text=True)
    for name in STARTERS:
        assert name in page
    for name in STARTERS:
        response = admin_post(admin, "/admin/templates", f"/admin/templates/{template_id(app, name)}/use")
        assert response.status_code == 303
        edit = response.headers["Location"]
        assert edit.endswith("/edit")
        saved = admin_post(admin, edit, edit, _form_of(admin.get(edit).get_data(as_text=True)))
        assert saved.status_code == 303, saved.get_data(as_text=True)[:1500]
    with app.app_context():
        drafts = db.session.scalars(select(Announcement)).all()
        assert len(drafts) == 4 and all(d.state is AnnouncementState.DRAFT for d in drafts)
        assert any("{{ name }}" in d.body_markdown for d in drafts)


def _form_of(html: str) -> dict[str, str]:
    import html as htmllib
    import re

    subject = re.search(r'id="subject"[^>]*value="([^"]*)"|value="([^"]*)"[^>]*id="subject"', html)
    body = re.search(r'<textarea[^>]*id="body"[^>]*>\n?(.*?)</textarea>', html, re.S)
    assert subject and body
    return {"subject": htmllib.unescape(subject.group(1) or subject.group(2)), "body": htmllib.unescape(body.group(1))}


def test_template_round_trip_create_edit_use_delete(app, clock):
    """Create, read back, edit, make a draft (a copy: later edits do not change it), delete after confirming."""
    admin = logged_in_admin(app, clock)
    body = "# Coffee morning\n\nDear {{ name }},\n\nCome and meet other parents.\n"
    created = admin_post(admin, "/admin/templates/new", "/admin/templates/new",
                         {"name": "Coffee morning", "subject": "Coffee with {{ groups }}", "body": body})
    assert created.status_code == 303
    tid = template_id(app, "Coffee morning")
    with app.app_context():
        row = db.session.get(AnnouncementTemplate, tid)
        assert (row.subject, row.body_markdown) == ("Coffee with {{ groups }}", body.strip())
    edit = f"/admin/templates/{tid}/edit"
    assert "Coffee with {{ groups }}" in admin.get(edit).get_data(as_text=True)
    used = admin_post(admin, "/admin/templates", f"/admin/templates/{tid}/use")
    draft_id = int(used.headers["Location"].split("/")[-2])
    assert (
        admin_post(admin, edit, edit, {"name": "Coffee morning", "subject": "Changed", "body": "Changed"}).status_code
        == 303
    )
    with app.app_context():
        draft = db.session.get(Announcement, draft_id)
        assert (draft.subject, draft.body_markdown) == ("Coffee with {{ groups }}", body.strip())
        assert db.session.get(AnnouncementTemplate, tid).subject == "Changed"
    confirm = admin.get(f"/admin/templates/{tid}/delete")
    assert confirm.status_code == 200 and "Delete the template" in confirm.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(AnnouncementTemplate, tid) is not None  # asking deletes nothing
    assert admin_post(admin, f"/admin/templates/{tid}/delete", f"/admin/templates/{tid}/delete").status_code == 303
    with app.app_context():
        assert db.session.get(AnnouncementTemplate, tid) is None
        assert db.session.get(Announcement, draft_id) is not None


def test_template_with_unknown_field_or_duplicate_name_is_refused(app, clock):
    """A misspelt field is refused with its line; a second template with the same name is refused."""
    admin = logged_in_admin(app, clock)
    bad = admin_post(admin, "/admin/templates/new", "/admin/templates/new",
                     {"name": "Bad", "subject": "Hi", "body": "Hello\n\n{{ nmae }}"})
    assert bad.status_code == 400
    assert "Line 3: {{ nmae }} is not a field you can use." in bad.get_data(as_text=True)
    dup = admin_post(admin, "/admin/templates/new", "/admin/templates/new",
                     {"name": "meeting invitation", "subject": "Hi", "body": "Hello"})
    assert dup.status_code == 400 and "There is already a template called" in dup.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(AnnouncementTemplate).where(AnnouncementTemplate.name == "Bad")) is None
