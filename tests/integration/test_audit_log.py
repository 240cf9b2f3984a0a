"""The audit log (V5, issue 19 part 4): every listed admin action is recorded with the right actor, in the same
transaction as the action; no row holds a member's address; removing an admin keeps their rows; owners read it at
/admin/audit with filters and keyset paging and download it as CSV; the daily purge keeps 730 days; nothing else
updates or deletes a row."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, select, update

from mailer.admins.accounts import create_admin
from mailer.admins.audit import AuditLogIsAppendOnly, record_audit
from mailer.extensions import db
from mailer.models import Admin, AdminRole, Announcement, AnnouncementState, AuditEvent, MemberStatus
from mailer.worker.housekeeping import Retention, purge
from support.factories import ADMIN_EMAIL, ADMIN_PASSWORD, add_member, admin_post, compose, logged_in_admin
from support.web import csrf_token

ROOT = Path(__file__).resolve().parents[2]
MEMBER = "sam.member@example.org"
PENDING = "pat.pending@example.org"
IMPORTED = "ira.imported@example.org"


@pytest.fixture
def app(make_app: Any, tmp_path: Path) -> Any:
    return make_app(MAILER_IMPORT_DIR=str(tmp_path / "imports"))


def rows(app: Any) -> list[AuditEvent]:
    with app.app_context():
        found = list(db.session.scalars(select(AuditEvent).order_by(AuditEvent.id)))
        db.session.expunge_all()
        return found


def actions(app: Any) -> list[tuple[str, str, str | None, str | None]]:
    return [(r.admin_email, r.action, r.object_type, r.object_id) for r in rows(app)]


def set_state(app: Any, announcement_id: int, state: AnnouncementState) -> None:
    with app.app_context():
        db.session.execute(update(Announcement).where(Announcement.id == announcement_id).values(state=state))
        db.session.commit()


def log_in(client: Any, email: str, password: str) -> int:
    token = csrf_token(client.get("/admin/login").get_data(as_text=True))
    return client.post("/admin/login", data={"csrf_token": token, "email": email, "password": password}).status_code


def test_each_admin_action_is_recorded_with_its_actor_and_never_a_member_address(app, clock):
    """V5: log-in, failed log-in, every announcement, member and consent action and log-out each leave one row
    naming the admin and the object by id; a refused form records nothing; no row contains any member's address."""
    with app.app_context():
        member = add_member(MEMBER, clock=clock)
        pending = add_member(PENDING, clock=clock, status=MemberStatus.PENDING)
    admin = logged_in_admin(app, clock)
    stranger = app.test_client()
    assert log_in(stranger, ADMIN_EMAIL, "not the password at all") == 400
    assert log_in(stranger, MEMBER, "a member typed their address here") == 400  # not an admin: names nobody

    draft = compose(admin, subject="Coffee morning", body="Hello")
    refused = admin_post(admin, "/admin/announcements/new", "/admin/announcements/new", {"subject": "", "body": ""})
    assert refused.status_code == 400  # nothing committed, nothing recorded
    page = f"/admin/announcements/{draft}"
    assert admin_post(admin, f"{page}/edit", f"{page}/edit", {"subject": "Coffee", "body": "Hi"}).status_code == 303
    assert admin_post(admin, page, f"{page}/test").status_code == 303
    assert admin_post(admin, page, f"{page}/schedule", {"send_date": "2026-03-29", "send_time": "09:00"}).status_code \
        == 303
    assert admin_post(admin, page, f"{page}/unschedule").status_code == 303
    assert admin_post(admin, page, f"{page}/send-now").status_code == 303
    set_state(app, draft, AnnouncementState.SENDING)  # as the worker would
    assert admin_post(admin, page, f"{page}/pause").status_code == 303
    assert admin_post(admin, page, f"{page}/resume").status_code == 303
    set_state(app, draft, AnnouncementState.SENT)
    assert admin_post(admin, page, f"{page}/publish", {"public": "1"}).status_code == 303
    other = compose(admin, subject="Wrong date", body="Oops")
    assert admin_post(admin, f"/admin/announcements/{other}", f"/admin/announcements/{other}/cancel").status_code == 303
    delete_page = f"/admin/announcements/{other}/delete"
    assert admin_post(admin, delete_page, delete_page).status_code == 303

    assert admin_post(admin, f"/admin/members/{pending}", f"/admin/members/{pending}/resend-confirmation"
                      ).status_code == 303
    assert admin_post(admin, f"/admin/members/{member}", f"/admin/members/{member}/unsubscribe").status_code == 303
    export = admin.get("/admin/members/export.csv")
    assert export.status_code == 200 and MEMBER in export.get_data(as_text=True)
    token = csrf_token(admin.get("/admin/members/import").get_data(as_text=True))
    uploaded = admin.post("/admin/members/import", content_type="multipart/form-data", data={
        "csrf_token": token, "file": (io.BytesIO(f"email\r\n{IMPORTED}\r\n".encode()), "members.csv")})
    preview = uploaded.headers["Location"]
    import_id = preview.rstrip("/").rsplit("/", 1)[1]
    assert admin_post(admin, preview, f"{preview}/apply").status_code == 303
    erase = f"/admin/members/{member}/erase"
    assert admin_post(admin, erase, erase).status_code == 303
    assert admin_post(admin, "/admin/consent", "/admin/consent", {
        "text": "Yes, email me {forum_name} news. I can unsubscribe at any time.", "privacy_notice_version": "2027-01",
    }).status_code == 303
    assert admin_post(admin, "/admin/", "/admin/logout").status_code == 303

    with app.app_context():
        admin_id = db.session.scalar(select(Admin.id).where(Admin.email == ADMIN_EMAIL))
        wording = db.session.execute(select(AuditEvent.object_id).where(AuditEvent.action == "consent wording changed")
                                     ).scalar_one()
    a, d, m, p = str(draft), str(other), str(member), str(pending)
    assert actions(app) == [
        (ADMIN_EMAIL, "logged in", None, None),
        (ADMIN_EMAIL, "log-in failed", None, None),
        ("", "log-in failed", None, None),
        (ADMIN_EMAIL, "announcement created", "announcement", a),
        (ADMIN_EMAIL, "announcement edited", "announcement", a),
        (ADMIN_EMAIL, "test sent", "announcement", a),
        (ADMIN_EMAIL, "announcement scheduled", "announcement", a),
        (ADMIN_EMAIL, "send stopped in the undo window (back to a draft)", "announcement", a),
        (ADMIN_EMAIL, "announcement sent", "announcement", a),
        (ADMIN_EMAIL, "announcement paused", "announcement", a),
        (ADMIN_EMAIL, "announcement resumed", "announcement", a),
        (ADMIN_EMAIL, "announcement published", "announcement", a),
        (ADMIN_EMAIL, "announcement created", "announcement", d),
        (ADMIN_EMAIL, "announcement stopped", "announcement", d),
        (ADMIN_EMAIL, "announcement deleted", "announcement", d),
        (ADMIN_EMAIL, "confirmation email resent", "member", p),
        (ADMIN_EMAIL, "member unsubscribed by an admin", "member", m),
        (ADMIN_EMAIL, "members exported", None, None),
        (ADMIN_EMAIL, "members imported", "import", import_id),
        (ADMIN_EMAIL, "member erased by an admin", "member", m),
        (ADMIN_EMAIL, "consent wording changed", "consent_wording", wording),
        (ADMIN_EMAIL, "logged out", None, None),
    ]
    recorded = rows(app)
    assert {r.admin_id for r in recorded if r.admin_email} == {admin_id}
    assert all(r.ip_address == "127.0.0.1" and r.user_agent and r.created_at == clock.now() for r in recorded)
    everything = " ".join(str(value) for r in recorded for value in vars(r).values()).lower()
    for address in (MEMBER, PENDING, IMPORTED):
        assert address not in everything


def test_removing_an_admin_keeps_the_rows_that_name_them(app, clock):
    """V5: the rows keep the admin's id and address after the admin row is deleted (no foreign key removes them)."""
    with app.app_context():
        create_admin(db.session, "volunteer@forum.example", ADMIN_PASSWORD, clock=clock, role=AdminRole.SENDER)
        db.session.commit()
    client = app.test_client()
    assert log_in(client, "volunteer@forum.example", ADMIN_PASSWORD) == 303
    assert admin_post(client, "/admin/", "/admin/logout").status_code == 303
    with app.app_context():
        db.session.execute(delete(Admin).where(Admin.email == "volunteer@forum.example"))
        db.session.commit()
    assert [(r.admin_email, r.action) for r in rows(app)] == [
        ("volunteer@forum.example", "logged in"), ("volunteer@forum.example", "logged out")]
    assert all(r.admin_id is not None for r in rows(app))


def seed_events(app: Any, clock: Any, count: int) -> None:
    """`count` events a minute apart, alternating two admins and two actions."""
    with app.app_context():
        owner = create_admin(db.session, "owner@forum.example", ADMIN_PASSWORD, clock=clock)
        sender = create_admin(db.session, "sender@forum.example", ADMIN_PASSWORD, clock=clock, role=AdminRole.SENDER)
        for i in range(count):
            actor = owner if i % 2 else sender
            record_audit(db.session, actor=actor, action="test sent" if i % 3 else "announcement edited",
                         object_type="announcement", object_id=i, ip="192.0.2.7", user_agent="Firefox", clock=clock)
            clock.advance(minutes=1)
        db.session.commit()


def event_ids(html: str) -> list[str]:
    table = html.split('id="audit-events"', 1)[1].split("</table>", 1)[0]
    return re.findall(r"announcement (\d+)</td>", table)


def test_the_audit_page_pages_back_by_id_newest_first(app, clock):
    """V5: /admin/audit shows the newest 50; "Older" (?before=<last id>) gives the next 50, then the rest."""
    admin = logged_in_admin(app, clock)  # its log-in is the oldest event
    seed_events(app, clock, 120)
    first = admin.get("/admin/audit")
    assert first.status_code == 200
    html = first.get_data(as_text=True)
    assert event_ids(html) == [str(i) for i in range(119, 69, -1)]
    older = re.search(r'href="(/admin/audit\?before=\d+)">Older</a>', html)
    assert older
    second = admin.get(older.group(1)).get_data(as_text=True)
    assert event_ids(second) == [str(i) for i in range(69, 19, -1)]
    last = re.search(r'href="(/admin/audit\?before=\d+)">Older</a>', second)
    assert last
    third = admin.get(last.group(1)).get_data(as_text=True)
    assert event_ids(third) == [str(i) for i in range(19, -1, -1)] and "logged in" in third
    assert "Older</a>" not in third


def test_the_audit_page_filters_by_who_what_and_date(app, clock):
    """V5: filters by admin, by action and by UK date range; a bad filter is a clear 400 page."""
    start = clock.now()
    seed_events(app, clock, 12)
    admin = logged_in_admin(app, clock)
    with app.app_context():
        sender_id = db.session.scalar(select(Admin.id).where(Admin.email == "sender@forum.example"))
    html = admin.get(f"/admin/audit?who={sender_id}").get_data(as_text=True)
    assert event_ids(html) == ["10", "8", "6", "4", "2", "0"]
    html = admin.get("/admin/audit?what=announcement+edited").get_data(as_text=True)
    assert event_ids(html) == ["9", "6", "3", "0"]
    day = start.date()
    assert len(event_ids(admin.get(f"/admin/audit?since={day}&until={day}").get_data(as_text=True))) == 12
    assert event_ids(admin.get(f"/admin/audit?since={day + timedelta(days=1)}").get_data(as_text=True)) == []
    for bad in ("who=abc", "what=nothing+like+this", "since=yesterday", "before=x",
                f"since={day}&until={day - timedelta(days=1)}"):
        response = admin.get(f"/admin/audit?{bad}")
        assert response.status_code == 400, bad


def test_the_audit_log_downloads_as_csv_safe_for_spreadsheets(app, clock):
    """V5: ?format=csv downloads the filtered log; a cell a spreadsheet would run as a formula gets an apostrophe."""
    admin = logged_in_admin(app, clock)
    with app.app_context():
        record_audit(db.session, actor=None, action="log-in failed", ip="192.0.2.9",
                     user_agent="=HYPERLINK(\"http://evil.example\")", clock=clock)
        db.session.commit()
    response = admin.get("/admin/audit?format=csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    table = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert table[0][:5] == ["id", "when_utc", "admin_id", "admin_email", "action"]
    assert [row[4] for row in table[1:]] == ["log-in failed", "logged in"]
    assert table[1][8] == "'=HYPERLINK(\"http://evil.example\")"
    only = list(csv.reader(io.StringIO(admin.get("/admin/audit?format=csv&what=logged+in").get_data(as_text=True))))
    assert [row[4] for row in only[1:]] == ["logged in"]


def test_the_daily_purge_deletes_only_events_past_the_retention(app, clock):
    """V5: housekeeping deletes audit rows older than MAILER_AUDIT_RETENTION_DAYS (730 by default), keeps the rest."""
    with app.app_context():
        record_audit(db.session, actor=None, action="log-in failed", ip=None, user_agent=None, clock=clock)
        clock.advance(days=400)
        record_audit(db.session, actor=None, action="log-in failed", ip=None, user_agent=None, clock=clock)
        db.session.commit()
        clock.advance(days=331)
        counts = purge(db.session, clock=clock, retention=Retention())
        db.session.commit()
        assert counts.audit_events == 1
        assert len(db.session.scalars(select(AuditEvent)).all()) == 1


def test_no_code_changes_or_deletes_audit_rows_but_the_purge(app, clock):
    """V5: no module in mailer/ but the housekeeping has an UPDATE or DELETE of audit_event, and the ORM refuses
    to change or delete a row."""
    pattern = re.compile(r"(update|delete)\(\s*AuditEvent|(UPDATE|DELETE\s+FROM)\s+audit_event", re.IGNORECASE)
    offenders = [str(path.relative_to(ROOT)) for path in (ROOT / "mailer").rglob("*.py")
                 if pattern.search(path.read_text(encoding="utf-8"))]
    assert offenders == ["mailer/worker/housekeeping.py"]
    with app.app_context():
        row = record_audit(db.session, actor=None, action="log-in failed", ip=None, user_agent=None, clock=clock)
        db.session.commit()
        row.action = "nothing happened"
        with pytest.raises(AuditLogIsAppendOnly):
            db.session.commit()
        db.session.rollback()
        db.session.delete(db.session.get(AuditEvent, row.id))
        with pytest.raises(AuditLogIsAppendOnly):
            db.session.commit()
