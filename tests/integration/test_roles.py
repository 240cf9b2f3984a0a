"""Roles (V4, issue 19 part 2): one permission table decides every admin page and action for every role.

The table-driven tests are generated from the app's URL map: every endpoint under /admin needs an entry (a new
page without one fails here), and every endpoint is requested by every role, GET and POST with a valid CSRF
token, expecting 403 exactly where the table says no."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import url_for
from sqlalchemy import select, update

from mailer.admins.accounts import create_admin
from mailer.admins.permissions import PERMISSIONS, may
from mailer.announcements.lifecycle import AnnouncementDraft, create_announcement
from mailer.announcements.templates import TemplateDraft, create_template
from mailer.extensions import db
from mailer.models import Admin, AdminRole
from support.factories import add_member
from support.web import csrf_token

PASSWORD = "a long test password"
MISSING = 999_999  # an id no row has: POSTs that are allowed reach the view and change nothing


def email_of(role: AdminRole) -> str:
    return f"{role.value}@forum.example"


def log_in_as(app: Any, clock: Any, role: AdminRole) -> Any:
    """A test client logged in through the real form as a new admin with `role`."""
    with app.app_context():
        create_admin(db.session, email_of(role), PASSWORD, clock=clock, role=role)
        db.session.commit()
    client = app.test_client()
    token = csrf_token(client.get("/admin/login").get_data(as_text=True))
    response = client.post("/admin/login", data={"csrf_token": token, "email": email_of(role), "password": PASSWORD})
    assert response.status_code == 303, response.get_data(as_text=True)[:500]
    return client


def admin_rules(app: Any) -> list[Any]:
    """Every rule of every blueprint mounted under /admin, log-out last (it ends the session)."""
    rules = [rule for rule in app.url_map.iter_rules() if rule.rule.startswith("/admin")]
    return sorted(rules, key=lambda rule: (rule.endpoint == "admin.logout", rule.endpoint))


def url_for_rule(app: Any, rule: Any, ids: dict[str, Any]) -> str:
    values = {name: ids.get(name, MISSING) for name in rule.arguments}
    if "action" in rule.arguments:  # a value the rule's `any(...)` converter takes
        values["action"] = sorted(rule._converters["action"].items)[0]
    with app.test_request_context():
        return url_for(rule.endpoint, **values)


def some_rows(app: Any, clock: Any) -> dict[str, Any]:
    """An announcement, a template and a member, so allowed pages open for real."""
    with app.app_context():
        item = create_announcement(db.session, AnnouncementDraft(subject="Draft", body_markdown="Hello", group_ids=[]),
                                   admin_id=None, clock=clock)
        template = create_template(db.session, TemplateDraft(name="Monthly", subject="News", body_markdown="Hi"),
                                   clock=clock)
        db.session.commit()
        ids = {"announcement_id": item.id, "template_id": template.id}
        ids["member_id"] = add_member("sam@example.org", clock=clock)
    return ids


def test_every_admin_endpoint_has_exactly_one_permission(app):
    """Issue 19 (2): each endpoint under /admin is in the permission table (a new page without one fails), and
    the table names no endpoint that does not exist (a typo would leave the real page refused to everyone)."""
    endpoints = {rule.endpoint for rule in admin_rules(app)}
    assert sorted(endpoints - PERMISSIONS.keys()) == [], "admin endpoints with no entry in mailer/admins/permissions.py"
    assert sorted(PERMISSIONS.keys() - endpoints) == [], "entries for endpoints the app does not have"


@pytest.mark.parametrize("role", list(AdminRole), ids=[r.value for r in AdminRole])
def test_every_endpoint_answers_every_role_as_the_table_says(app, clock, role):
    """Issue 19 (2): every admin endpoint x this role, GET and POST (with a CSRF token): 403 exactly where the
    table refuses, and where it allows, the view runs (never a 403, never a 500)."""
    ids = some_rows(app, clock)
    client = log_in_as(app, clock, role)
    token = csrf_token(client.get("/admin/").get_data(as_text=True))
    checked = 0
    for rule in admin_rules(app):
        permission = PERMISSIONS[rule.endpoint]
        if permission.public:
            continue
        for method in sorted(rule.methods & {"GET", "POST"}):
            if method == "GET":
                response = client.get(url_for_rule(app, rule, ids))
            else:  # POSTs name missing rows, so an allowed action changes nothing and the next request still works
                response = client.post(url_for_rule(app, rule, {}), data={"csrf_token": token})
            response.get_data()  # a streamed download holds its request open until it is read
            response.close()
            allowed = may(role, rule.endpoint)
            where = f"{method} {rule.rule} as {role.value}"
            if allowed:
                assert response.status_code != 403 and response.status_code < 500, (where, response.status_code)
            else:
                assert response.status_code == 403, (where, response.status_code)
            checked += 1
    assert checked >= 40


def test_writers_get_403_on_member_pages_exports_and_send_actions_with_the_menu_kept(app, clock):
    """Issue 19 (2): a writer is refused member pages, the export, scheduling and sending; the refusal is a clear
    page that keeps the admin menu, which offers only what a writer may use."""
    ids = some_rows(app, clock)
    writer = log_in_as(app, clock, AdminRole.WRITER)
    token = csrf_token(writer.get("/admin/").get_data(as_text=True))
    announcement = ids["announcement_id"]
    for path in ("/admin/members", f"/admin/members/{ids['member_id']}", "/admin/members/export.csv",
                 "/admin/bounces", f"/admin/announcements/{announcement}/report", "/admin/audit"):
        assert writer.get(path).status_code == 403, path
    for path in (f"/admin/announcements/{announcement}/send-now", f"/admin/announcements/{announcement}/schedule",
                 f"/admin/members/{ids['member_id']}/unsubscribe"):
        assert writer.post(path, data={"csrf_token": token}).status_code == 403, path
    page = writer.get("/admin/members").get_data(as_text=True)
    assert "You cannot use this page" in page and "sam@example.org" not in page
    nav = page.split('<nav aria-label="Admin">', 1)[1].split("</nav>", 1)[0]
    links = re.findall(r'<a href="[^"]*">([^<]+)</a>', nav)
    assert links == ["Announcements", "New announcement", "Templates", "Public archive", "Your account",
                     "Your log-ins"], links
    # what a writer may do still works: drafting, and a test to themselves
    assert writer.get(f"/admin/announcements/{announcement}/edit").status_code == 200
    assert writer.post(f"/admin/announcements/{announcement}/test", data={"csrf_token": token}).status_code == 303


def test_the_menu_follows_the_role(app, clock):
    """Issue 19 (2): owners see every page in the menu, senders all but settings and records."""
    def menu(client: Any) -> list[str]:
        nav = client.get("/admin/").get_data(as_text=True).split('<nav aria-label="Admin">', 1)[1].split("</nav>")[0]
        return re.findall(r'<a href="[^"]*">([^<]+)</a>', nav)

    assert menu(log_in_as(app, clock, AdminRole.OWNER)) == [
        "Announcements", "Members", "Bounces", "New announcement", "Templates", "Consent wording", "Audit log",
        "Groups", "Forum details", "Posters and leaflets", "Public archive", "Admins", "Your account", "Your log-ins"]
    assert menu(log_in_as(app, clock, AdminRole.SENDER)) == [
        "Announcements", "Members", "Bounces", "New announcement", "Templates", "Posters and leaflets",
        "Public archive", "Your account", "Your log-ins"]


def test_a_role_change_counts_from_the_next_request(app, clock):
    """Issue 19 (2, 5): the role is read from the database on every request: an owner made a writer is refused
    at once, without logging in again, and allowed again when made an owner."""
    client = log_in_as(app, clock, AdminRole.OWNER)
    assert client.get("/admin/members").status_code == 200

    def set_role(role: AdminRole) -> None:
        with app.app_context():
            db.session.execute(update(Admin).where(Admin.email == email_of(AdminRole.OWNER)).values(role=role))
            db.session.commit()

    set_role(AdminRole.WRITER)
    assert client.get("/admin/members").status_code == 403
    set_role(AdminRole.OWNER)
    assert client.get("/admin/members").status_code == 200
    with app.app_context():
        assert db.session.scalar(select(Admin.role).where(Admin.email == email_of(AdminRole.OWNER))) is AdminRole.OWNER


def test_not_logged_in_is_sent_to_log_in_not_refused(app):
    """Issue 19 (2): without a session every admin page still leads to the log-in page (a 302, not a 403)."""
    client = app.test_client()
    for path in ("/admin/", "/admin/members", "/admin/audit"):
        response = client.get(path)
        assert response.status_code == 302 and "/admin/login" in response.headers["Location"], path


def test_a_writer_previews_without_seeing_any_member(app, clock):
    """Issue 19 (2): a writer's preview offers no sample members and ignores ?sample=<id>: no member name or
    address reaches them; a sender still gets the samples."""
    ids = some_rows(app, clock)
    page = f"/admin/announcements/{ids['announcement_id']}"
    writer = log_in_as(app, clock, AdminRole.WRITER)
    for path in (page, f"{page}?sample={ids['member_id']}", f"{page}/preview.html?sample={ids['member_id']}"):
        response = writer.get(path)
        assert response.status_code == 200 and "sam@example.org" not in response.get_data(as_text=True), path
        assert "Sam" not in response.get_data(as_text=True), path
    sender = log_in_as(app, clock, AdminRole.SENDER)
    assert "sam@example.org" in sender.get(page).get_data(as_text=True)
