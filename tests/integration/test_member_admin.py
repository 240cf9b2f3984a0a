"""J6 with a real SMTP server: members list, member detail and admin actions, CSV import and export, dashboard.

The import is driven through the admin pages (upload, preview, apply) and the
command line; mail is read from the SMTP sink after worker ticks."""

from __future__ import annotations

import csv
import html
import io
import re
from pathlib import Path
from typing import Any

import pytest
from conftest import base_config
from sqlalchemy import func, select

from mailer import create_app
from mailer.extensions import db
from mailer.mail.outbox import enqueue_mail
from mailer.members.addresses import address_hash
from mailer.members.csv.apply import apply_import
from mailer.members.csv.parse import FORMULA_STARTS, read_lines
from mailer.members.csv.plan import Outcome, plan_import
from mailer.models import (
    ConsentAction,
    ConsentEvent,
    ConsentMethod,
    MailKind,
    Member,
    MemberStatus,
    OutboxMessage,
    OutboxState,
    SocialMedia,
    Suppression,
    member_group,
)
from mailer.settings import settings_of
from mailer.worker.runner import run_tick_for_app
from support.factories import ADMIN_EMAIL, add_member, add_members, admin_post, compose, logged_in_admin
from support.mail import link_to
from support.web import csrf_token, join_and_confirm, path_of, post_button

CONFIRM_SUBJECT = "Please confirm you want to join Test Parent Carer Forum"
sqlite_only = pytest.mark.parametrize("database_uri", ["sqlite"], indirect=True)

MIXED = (
    "email,name,groups,social_media,consent_date,consent_source,consent_wording\r\n"
    "new.one@example.org,New One,Forum news,no,,,\r\n"  # 2
    "new.two@example.org,New Two,,yes,,,\r\n"  # 3
    "sheet@example.org,Sheet Signer,Local Offer working group,,2025-09-14,Paper sheet at the coffee morning,"
    "\"Yes, email me forum news.\"\r\n"  # 4
    "EXISTING@example.org,Changed Name,Voice and Influence group,,,,\r\n"  # 5
    "bounced@example.org,Bounced,,,,,\r\n"  # 6
    "erased@example.org,Erased,,,2025-01-01,Website,\r\n"  # 7
    "not-an-address,X,,,,,\r\n"  # 8
    "new.one@example.org,Duplicate,,,,,\r\n"  # 9
    "new.three@example.org,New Three,Knitting,,,,\r\n"  # 10
    "new.four@example.org,New Four,,,,,\r\n"  # 11
)
EXPECTED = [
    (2, "new.one@example.org", "new_pending"),
    (3, "new.two@example.org", "new_pending"),
    (4, "sheet@example.org", "new_member_with_evidence"),
    (5, "EXISTING@example.org", "already_on_list"),
    (6, "bounced@example.org", "suppressed"),
    (7, "erased@example.org", "suppressed"),
    (8, "not-an-address", "invalid"),
    (9, "new.one@example.org", "duplicate"),
    (10, "new.three@example.org", "invalid"),
    (11, "new.four@example.org", "new_pending"),
]


def table_counts(app: Any) -> dict[str, int]:
    with app.app_context():
        counts = {
            m.__tablename__: db.session.scalar(select(func.count()).select_from(m))
            for m in (Member, ConsentEvent, OutboxMessage, Suppression)
        }
        counts["member_group"] = db.session.scalar(select(func.count()).select_from(member_group))
        return counts


def suppress(app: Any, clock: Any, email: str, reason: str) -> None:
    with app.app_context():
        key = settings_of(app).suppression_key
        db.session.add(Suppression(address_hash=address_hash(key, email), reason=reason, created_at=clock.now()))
        db.session.commit()


def upload(client: Any, data: bytes, filename: str = "members.csv") -> Any:
    token = csrf_token(client.get("/admin/members/import").get_data(as_text=True))
    return client.post(
        "/admin/members/import",
        data={"csrf_token": token, "file": (io.BytesIO(data), filename)},
        content_type="multipart/form-data",
    )


def row_outcomes(page_html: str) -> list[tuple[int, str, str]]:
    """(line, email, outcome) from the 'Row by row' table of a preview or result page."""
    table = page_html.split('id="rows"', 1)[1]
    return [
        (int(line), html.unescape(email), outcome)
        for outcome, line, email in re.findall(r'<tr data-outcome="(\w+)"><td>(\d+)</td><td>([^<]*)</td>', table)
    ]


def result_rows(page_html: str) -> list[tuple[int, str]]:
    """(line, outcome) from the 'Row by row' table of a result page, which names no address."""
    table = page_html.split('id="rows"', 1)[1]
    return [(int(line), outcome) for outcome, line in re.findall(r'<tr data-outcome="(\w+)"><td>(\d+)</td>', table)]


def page_text(response: Any) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", response.get_data(as_text=True))).split())


@pytest.fixture
def import_dir(tmp_path: Path) -> Path:
    return tmp_path / "imports"


@pytest.fixture
def app(make_app: Any, import_dir: Path) -> Any:
    """Imports wait in the test's own directory, and confirmations go out 2 a minute (30 s apart)."""
    return make_app(MAILER_IMPORT_DIR=str(import_dir), MAILER_IMPORT_CONFIRMATIONS_PER_MINUTE=2)


@pytest.fixture
def other_database_uri(database_uri: str, database_factory: Any, tmp_path: Path) -> Any:
    """A second fresh database on the same backend, for importing an export into a new copy."""
    if database_uri.startswith("sqlite"):
        directory = tmp_path / "other"
        directory.mkdir()
        yield database_factory.sqlite(directory)
        return
    uri, name = database_factory.postgres()
    try:
        yield uri
    finally:
        database_factory.drop_postgres(name)


def test_mixed_import_preview_matches_result_and_only_new_pending_people_are_asked(
    app, clock, smtp, import_dir, tmp_path
):
    """New, existing, suppressed, invalid, duplicate, with and without evidence: preview = result row by row;
    confirmations go only to the new pending people, spread out; a second run changes nothing."""
    with app.app_context():
        add_member("existing@example.org", clock=clock, name="Existing", groups=[1])
    suppress(app, clock, "bounced@example.org", "bounces")
    suppress(app, clock, "erased@example.org", "erased")  # erased people are not re-added by an import either
    admin = logged_in_admin(app, clock)
    before = table_counts(app)

    uploaded = upload(admin, MIXED.encode("utf-8"))
    assert uploaded.status_code == 303
    preview_url = path_of(uploaded.headers["Location"])
    import_id = preview_url.rsplit("/", 1)[1]
    assert [p.name for p in import_dir.iterdir()] == [f"{import_id}.csv"]
    preview = admin.get(preview_url)
    assert preview.status_code == 200
    assert row_outcomes(preview.get_data(as_text=True)) == EXPECTED
    text = page_text(preview)
    assert "Nothing has changed yet" in text
    assert "3 Will be added and sent an email asking them to confirm" in text
    assert "8 not-an-address The email address is not valid" in text
    assert "9 new.one@example.org The same address as line 2" in text
    assert "10 new.three@example.org There is no group called “Knitting”" in text
    assert table_counts(app) == before  # a preview changes nothing

    applied = admin_post(admin, preview_url, f"{preview_url}/apply")
    assert applied.status_code == 303
    result = admin.get(path_of(applied.headers["Location"]))
    assert result.status_code == 200 and "Import finished" in result.get_data(as_text=True)
    assert result_rows(result.get_data(as_text=True)) == [(line, outcome) for line, _, outcome in EXPECTED]
    assert not (import_dir / f"{import_id}.csv").exists()  # the upload is deleted once applied
    # The result keeps no address, on the page or on disk (a member erased later must not stay listed).
    result_file = import_dir / f"{import_id}.result.json"
    assert [p.name for p in import_dir.iterdir()] == [result_file.name]
    for _, email, _ in EXPECTED:
        assert email not in result.get_data(as_text=True) and email not in result_file.read_text(encoding="utf-8")

    with app.app_context():
        members = {m.email: m for m in db.session.scalars(select(Member))}
        assert sorted(members) == sorted(
            ["existing@example.org", "new.one@example.org", "new.two@example.org", "new.four@example.org",
             "sheet@example.org"]
        )
        assert members["existing@example.org"].name == "Existing"  # untouched
        assert [g.id for g in members["existing@example.org"].groups] == [1]
        one = members["new.one@example.org"]
        assert (one.status, one.name, one.social_media, [g.name for g in one.groups]) == (
            MemberStatus.PENDING, "New One", SocialMedia.NO, ["Forum news"])
        sheet = members["sheet@example.org"]
        assert sheet.status is MemberStatus.MEMBER and [g.id for g in sheet.groups] == [2]
        event = db.session.scalars(select(ConsentEvent).where(ConsentEvent.member_id == sheet.id)).one()
        assert (event.action, event.method) == (ConsentAction.IMPORTED, ConsentMethod.IMPORT)
        assert event.detail["evidence"] == {
            "consent_date": "2025-09-14",
            "consent_source": "Paper sheet at the coffee morning",
            "consent_wording": "Yes, email me forum news.",
        }
        assert event.detail["line"] == 4 and isinstance(event.detail["imported_by_admin_id"], int)

    # Confirmations go out 30 s apart, only to the three new pending people.
    run_tick_for_app(app)
    assert [r.rcpt_tos for r in smtp.wait_for(1)] == [["new.one@example.org"]]
    clock.advance(seconds=30)
    run_tick_for_app(app)
    clock.advance(seconds=30)
    run_tick_for_app(app)
    clock.advance(hours=1)
    run_tick_for_app(app)
    received = smtp.wait_for(3)
    assert [r.rcpt_tos[0] for r in received] == ["new.one@example.org", "new.two@example.org", "new.four@example.org"]
    assert {r.message["Subject"] for r in received} == {CONFIRM_SUBJECT}
    # The imported person confirms through the emailed link like anyone who joined on the form.
    assert post_button(app.test_client(), path_of(link_to(received[0].message, "/confirm/"))).status_code == 200

    # The same file again, from the command line: a dry run lists the problems, the real run changes nothing.
    path = tmp_path / "members.csv"
    path.write_bytes(MIXED.encode("utf-8"))
    after_first = table_counts(app)
    runner = app.test_cli_runner()
    dry = runner.invoke(args=["members", "import", "--dry-run", str(path)])
    assert dry.exit_code == 0, dry.output
    assert "line 8: not-an-address: the email address is not valid" in dry.output
    assert "line 9: new.one@example.org: the same address as line 2" in dry.output
    assert "Dry run: nothing was changed." in dry.output
    again = runner.invoke(args=["members", "import", str(path)])
    assert again.exit_code == 0, again.output
    assert "5 already on the list, not changed." in again.output and "added" not in again.output
    assert table_counts(app) == after_first
    clock.advance(hours=2)
    run_tick_for_app(app)
    run_tick_for_app(app)
    assert len(smtp.received) == 4  # three confirmations and one welcome: nothing new


def test_export_round_trip_into_a_fresh_copy_with_formula_cells_neutralised(app, clock, smtp, other_database_uri):
    """The streamed download imports into a new database as the same members with the same evidence;
    cells that would run as spreadsheet formulas start with a quote."""
    join_and_confirm(app, app.test_client(), smtp, "web@example.org", name="Web Joiner", groups=[1, 3])
    admin = logged_in_admin(app, clock)
    source = (
        "email,name,groups,social_media,consent_date,consent_source,consent_wording\r\n"
        "-dash@example.org,\"=HYPERLINK(\"\"http://evil.example\"\",\"\"click\"\")\",Forum news,no,"
        "2025-09-14,@paper sheet,+Yes please\r\n"
        "pending@example.org,Zoë Pending,Voice and Influence group,prefer_not_to_say,,,\r\n"
        "leaving@example.org,Lee Leaving,,yes,,,\r\n"
    )
    with app.app_context():
        apply_import(db.session, io.StringIO(source), settings=settings_of(app).import_settings,
                                 clock=clock)
        leaving = db.session.scalar(select(Member.id).where(Member.email == "leaving@example.org"))
    assert admin_post(admin, f"/admin/members/{leaving}", f"/admin/members/{leaving}/unsubscribe").status_code == 303

    response = admin.get("/admin/members/export.csv")
    assert response.status_code == 200 and response.is_streamed
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert re.fullmatch(r'attachment; filename="members-2026-03-02\.csv"', response.headers["Content-Disposition"])
    body = response.get_data()
    assert body.startswith(b"\xef\xbb\xbf")  # so Excel reads it as UTF-8
    exported = body.decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(exported, newline="")))
    assert [r["email"] for r in rows] == [
        "web@example.org", "'-dash@example.org", "pending@example.org", "leaving@example.org"]
    assert all(not cell.startswith(FORMULA_STARTS) for r in rows for cell in r.values())
    dash = rows[1]
    assert dash["name"] == "'=HYPERLINK(\"http://evil.example\",\"click\")"
    assert (dash["consent_source"], dash["consent_wording"]) == ("'@paper sheet", "'+Yes please")
    web = rows[0]
    assert web["status"] == "member" and web["groups"] == "Forum news;Voice and Influence group"
    assert web["consent_source"] == "Joined on the website and confirmed by email link"
    assert web["consent_wording"].startswith("Yes, I want Test Parent Carer Forum to email me")
    assert rows[2]["status"] == "pending" and rows[2]["consent_date"] == ""
    assert rows[3]["status"] == "unsubscribed"

    fresh = create_app({**base_config(other_database_uri, smtp), "MAILER_IMPORT_CONFIRMATIONS_PER_MINUTE": 0})
    fresh.extensions["mailer.clock"] = clock
    try:
        with fresh.app_context():
            summary = apply_import(
                db.session, read_lines(io.BytesIO(body)),
                settings=settings_of(fresh).import_settings, clock=clock,
            )
        assert summary.counts == {**dict.fromkeys(Outcome, 0), "new_member_with_evidence": 2,
                                  "new_pending": 1, "new_unsubscribed": 1}

        def people(some_app: Any) -> list[tuple[Any, ...]]:
            with some_app.app_context():
                return [
                    (m.email, m.name, m.status, m.social_media, [g.name for g in m.groups])
                    for m in db.session.scalars(select(Member).order_by(Member.id))
                ]

        assert people(fresh) == people(app)
        with fresh.app_context():
            evidence = db.session.scalars(
                select(ConsentEvent.detail)
                .where(ConsentEvent.action == ConsentAction.IMPORTED)
                .order_by(ConsentEvent.id)
            ).all()
        assert evidence[1]["evidence"] == {"consent_date": "2025-09-14", "consent_source": "@paper sheet",
                                           "consent_wording": "+Yes please"}
        # And the fresh copy exports the same file (the command line writes it without the Excel BOM).
        again = fresh.test_cli_runner().invoke(args=["members", "export"])
        assert again.exit_code == 0, again.output
        assert again.output.replace("\r\n", "\n") == exported.replace("\r\n", "\n")
    finally:
        with fresh.app_context():
            db.session.remove()
            db.engine.dispose()


BAD_UPLOADS = [
    ("Email,Name\nzoë@example.org,Zoë\n".encode("cp1252"), "not saved as UTF-8"),
    (b"Name,Telephone\r\nZoe,0161 000 0000\r\n", "no email column"),
    (b"", "The file is empty"),
]


@sqlite_only
@pytest.mark.parametrize(("data", "message"), BAD_UPLOADS, ids=["not-utf-8", "wrong-columns", "empty"])
def test_unreadable_upload_gets_a_clear_message_and_nothing_is_imported(app, clock, import_dir, data, message):
    """The preview answers 400 with the reason in an error summary, deletes the upload, and changes nothing."""
    admin = logged_in_admin(app, clock)
    before = table_counts(app)
    uploaded = upload(admin, data)
    assert uploaded.status_code == 303
    preview = admin.get(path_of(uploaded.headers["Location"]))
    assert preview.status_code == 400
    body = preview.get_data(as_text=True)
    assert "There is a problem" in body and message in html.unescape(body) and 'aria-invalid="true"' in body
    assert list(import_dir.iterdir()) == []
    assert table_counts(app) == before


@sqlite_only
def test_upload_limits_are_for_the_import_page_only(app, clock, import_dir):
    """A 50 MB file gets the clear 413 page; 1.5 MB (over the app-wide 1 MB) is fine here; no token, no upload."""
    admin = logged_in_admin(app, clock)
    before = table_counts(app)
    big = admin.post(
        "/admin/members/import",
        data={"csrf_token": "x", "file": (io.BytesIO(b"x" * (50 * 1024 * 1024)), "big.csv")},
        content_type="multipart/form-data",
    )
    assert big.status_code == 413 and "That was too much to send" in big.get_data(as_text=True)
    no_token = admin.post("/admin/members/import", data={"file": (io.BytesIO(b"email\r\na@example.org\r\n"), "a.csv")},
                          content_type="multipart/form-data")
    assert no_token.status_code == 400
    assert not import_dir.exists() or list(import_dir.iterdir()) == []

    wording = "I agree. " * 550
    rows = "".join(f"p{i}@example.org,2025-01-01,Sign-up sheet,{wording}\r\n" for i in range(300))
    data = ("email,consent_date,consent_source,consent_wording\r\n" + rows).encode()
    assert 1024 * 1024 < len(data) < 2 * 1024 * 1024
    anonymous = app.test_client().post("/admin/members/import", data={"file": (io.BytesIO(data), "a.csv")},
                                       content_type="multipart/form-data")
    assert anonymous.status_code == 413  # the raised limit is for logged-in admins only
    uploaded = upload(admin, data)
    assert uploaded.status_code == 303
    preview = admin.get(path_of(uploaded.headers["Location"]))
    assert preview.status_code == 200
    assert "300 Will be added as members, using the consent evidence in the file" in page_text(preview)
    assert "Only the first 200 rows are shown" in page_text(preview)
    assert table_counts(app) == before
    # The other forms keep the 1 MB limit.
    compose_page = admin.get("/admin/announcements/new").get_data(as_text=True)
    too_big = admin.post("/admin/announcements/new", data={"csrf_token": csrf_token(compose_page), "subject": "x",
                                                           "body": "y" * (1024 * 1024 + 10)})
    assert too_big.status_code == 413


def test_admin_actions_on_member_detail(app, clock, smtp):
    """Resend confirmation (mail arrives, repeat throttled), unsubscribe on their behalf (recorded as admin),
    erase with a confirm step (then an import skips them)."""
    with app.app_context():
        waiting = add_member("waiting@example.org", clock=clock, status=MemberStatus.PENDING, name="Wendy Waiting")
        queued = add_member("queued@example.org", clock=clock, status=MemberStatus.PENDING)
        enqueue_mail(db.session, MailKind.CONFIRM, member_id=queued, clock=clock)
        db.session.commit()
        going = add_member("going@example.org", clock=clock, name="Gina Going", groups=[1])
    admin = logged_in_admin(app, clock)
    page = admin.get(f"/admin/members/{waiting}")
    assert page.status_code == 200 and "Send the confirmation email again" in page.get_data(as_text=True)

    resent = admin_post(admin, f"/admin/members/{waiting}", f"/admin/members/{waiting}/resend-confirmation")
    assert resent.status_code == 303
    assert "on its way to waiting@example.org" in page_text(admin.get(f"/admin/members/{waiting}"))

    # Unsubscribing someone drops the confirmation request still waiting for them.
    assert admin_post(admin, f"/admin/members/{queued}", f"/admin/members/{queued}/unsubscribe").status_code == 303
    run_tick_for_app(app)
    assert [r.rcpt_tos for r in smtp.wait_for(1)] == [["waiting@example.org"]]
    assert smtp.received[0].message["Subject"] == CONFIRM_SUBJECT
    again = admin_post(admin, f"/admin/members/{waiting}", f"/admin/members/{waiting}/resend-confirmation")
    assert again.status_code == 303
    assert "sent to them recently, so no other was sent" in page_text(admin.get(f"/admin/members/{waiting}"))

    assert admin_post(admin, f"/admin/members/{going}", f"/admin/members/{going}/unsubscribe").status_code == 303
    with app.app_context():
        member = db.session.get(Member, going)
        assert member.status is MemberStatus.UNSUBSCRIBED
        event = db.session.scalars(select(ConsentEvent).where(ConsentEvent.member_id == going)).one()
        assert (event.action, event.method) == (ConsentAction.WITHDRAWN, ConsentMethod.ADMIN)
        assert event.detail["status_before"] == "member" and isinstance(event.detail["admin_id"], int)
        assert db.session.scalar(select(OutboxMessage.state).where(OutboxMessage.member_id == queued)) \
            is OutboxState.DROPPED
    detail = admin.get(f"/admin/members/{going}").get_data(as_text=True)
    assert f"An admin, on their behalf Admin: {ADMIN_EMAIL}" in " ".join(re.sub(r"<[^>]+>", " ", detail).split())
    assert "Unsubscribe them</button>" not in detail and "Send the confirmation email again" not in detail
    run_tick_for_app(app)
    assert len(smtp.received) == 1

    confirm_page = admin.get(f"/admin/members/{going}/erase")
    assert confirm_page.status_code == 200 and "It cannot be undone" in confirm_page.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(Member, going) is not None  # opening the page erases nothing
    erased = admin_post(admin, f"/admin/members/{going}/erase", f"/admin/members/{going}/erase")
    assert erased.status_code == 303 and path_of(erased.headers["Location"]) == "/admin/members"
    assert admin.get(f"/admin/members/{going}").status_code == 404
    with app.app_context():
        assert db.session.scalar(select(func.count()).where(ConsentEvent.email == "going@example.org")) == 0
        assert db.session.scalar(select(Suppression.reason)) == "erased"
        outcome = list(plan_import(
            db.session, io.StringIO("email,consent_date,consent_source\ngoing@example.org,2025-01-01,Sheet\n"),
            suppression_key=settings_of(app).suppression_key, clock=clock))
    assert [o.outcome for o in outcome] == [Outcome.SUPPRESSED]


def test_members_list_search_filters_counts_and_keyset_pages(app, clock):
    """Search by part of a name or address, filter by status and group, counts on top; 'Next page' shows all once."""
    ids = add_members(app, clock, 120, groups=[1])
    with app.app_context():
        zoe = add_member("zoe.searchable@example.org", clock=clock, name="Zoë Findme", status=MemberStatus.PENDING,
                         groups=[2])
        add_member("percent%under_score@example.org", clock=clock, name="Odd Address")
    admin = logged_in_admin(app, clock)

    first = admin.get("/admin/members")
    assert first.status_code == 200
    text = page_text(first)
    assert "Member 121 Waiting to confirm 1 Unsubscribed 0" in text
    assert "Forum news 120 120 Local Offer working group 1 0 Voice and Influence group 0 0" in text

    seen: list[int] = []
    url: str | None = "/admin/members"
    while url:
        body = admin.get(url).get_data(as_text=True)
        seen += [int(i) for i in re.findall(r'href="/admin/members/(\d+)"', body)]
        found = re.search(r'href="(/admin/members\?after=\d+)">Next page', body)
        url = html.unescape(found.group(1)) if found else None
    assert len(seen) == 122 and len(set(seen)) == 122 and seen == sorted(seen, reverse=True)
    assert set(ids) < set(seen)

    def shown(query: str) -> list[int]:
        response = admin.get("/admin/members?" + query)
        assert response.status_code == 200, query
        return [int(i) for i in re.findall(r'href="/admin/members/(\d+)"', response.get_data(as_text=True))]

    assert shown("q=FINDME") == [zoe]
    assert shown("q=zoe.search") == [zoe]
    assert shown("q=%25under_") == [zoe + 1]  # % and _ are searched for, not wildcards
    assert shown("status=pending") == [zoe]
    assert shown("group=2") == [zoe]
    assert shown("group=1&status=pending") == []
    assert len(shown("status=member&q=member")) == 50
    bad = admin.get("/admin/members?status=deleted")
    assert bad.status_code == 400 and "There is a problem" in bad.get_data(as_text=True)


def test_dashboard_shows_members_signups_schedule_last_send_and_outbox_health(app, clock, smtp):
    """The admin's first page: members by status, recent signups, next announcement, last send, stuck mail."""
    with app.app_context():
        add_member("old@example.org", clock=clock)
    clock.advance(days=10)
    with app.app_context():
        add_member("new@example.org", clock=clock)
        add_member("waiting@example.org", clock=clock, status=MemberStatus.PENDING)
    admin = logged_in_admin(app, clock)
    sent = compose(admin, subject="Council letter", body="# Council letter\n\nNews.")
    assert admin_post(admin, f"/admin/announcements/{sent}", f"/admin/announcements/{sent}/send-now").status_code == 303
    smtp.reply_to_rcpt("new@example.org", "550 No such user")
    run_tick_for_app(app)
    later = compose(admin, subject="Coffee morning", body="# Coffee morning\n\nCome along.")
    scheduled = admin_post(admin, f"/admin/announcements/{later}", f"/admin/announcements/{later}/schedule",
                           {"send_date": "2026-03-20", "send_time": "10:00"})
    assert scheduled.status_code == 303
    with app.app_context():
        enqueue_mail(db.session, MailKind.TEST, to_address="admin@forum.example", clock=clock)
        db.session.commit()
    clock.advance(minutes=25)

    text = page_text(admin.get("/admin/"))
    assert "Confirmed members 2 Waiting to confirm 1 Unsubscribed 0 Signed up in the last 7 days 2" in text
    assert "Next scheduled announcement: Coffee morning , Friday 20 March 2026 at 10:00 (UK time)." in text
    assert "Last send: Council letter , started 12 March 2026 at 09:00: 1 sent, 1 failed." in text
    assert "1 waiting to go, the oldest for 25 minutes. That is longer than it should be" in text


# --- issue 15: a full disk, and import files kept no longer than a day ----------------------------


@pytest.fixture
def small_import_dir(tmp_path: Path) -> Any:
    """The import directory on a 64 KB tmpfs: writes past that fail with ENOSPC, as on a full disk."""
    from conftest import skip_or_fail

    from support.disk import small_disk

    try:
        with small_disk(tmp_path / "small-imports", size="64k") as directory:
            yield directory
    except PermissionError as exc:
        skip_or_fail(str(exc))


def big_csv(rows: int) -> bytes:
    lines = ["email,name,groups,social_media,consent_date,consent_source,consent_wording"]
    lines += [f"person{i:05d}@example.org,Person {i:05d},Forum news,no,,," for i in range(rows)]
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


def test_an_upload_that_fills_the_disk_is_a_507_and_leaves_no_cut_off_file(make_app, clock, small_import_dir):
    """A CSV bigger than the room left: a clear 507 on the upload page, no partial file of members in the
    import directory (not even under a temporary name), nothing imported; a small one still works."""
    app = make_app(MAILER_IMPORT_DIR=str(small_import_dir))
    admin = logged_in_admin(app, clock)
    before = table_counts(app)
    data = big_csv(3000)
    assert len(data) > 2 * 64 * 1024
    response = upload(admin, data)
    assert response.status_code == 507
    text = page_text(response)
    assert "There is not enough space on the server to keep this file, so nothing was saved." in text
    assert text.startswith("Error: Add members from a CSV file")
    assert list(small_import_dir.iterdir()) == []
    assert table_counts(app) == before
    assert upload(admin, big_csv(3)).status_code == 303  # the failure left the room it found


def test_when_the_result_cannot_be_kept_the_import_still_shows_what_it_did(make_app, clock, small_import_dir):
    """The disk fills between preview and apply: the import is done, its page is shown at once instead of kept,
    and neither the upload nor a partial result file is left behind."""
    from support.disk import fill

    app = make_app(MAILER_IMPORT_DIR=str(small_import_dir))
    admin = logged_in_admin(app, clock)
    uploaded = upload(admin, big_csv(3))
    preview_url = path_of(uploaded.headers["Location"])
    assert admin.get(preview_url).status_code == 200
    filler = fill(small_import_dir)
    try:
        applied = admin_post(admin, preview_url, f"{preview_url}/apply")
        assert applied.status_code == 200
        assert "Import finished" in page_text(applied) and "3 Added and sent an email asking them to confirm" in \
            page_text(applied)
        assert [p.name for p in small_import_dir.iterdir()] == ["filler"]
    finally:
        filler.unlink()
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Member)) == 3


def test_a_document_upload_that_fills_the_disk_is_a_507_and_keeps_nothing(make_app, clock, tmp_path):
    """The same for hosted documents: 507 on the upload form, no partial file, no row."""
    from conftest import skip_or_fail

    from mailer.models import Document
    from support.disk import small_disk
    from support.documents import tiny_pdf

    try:
        with small_disk(tmp_path / "small-documents", size="64k") as directory:
            app = make_app(MAILER_DOCUMENT_DIR=str(directory))
            admin = logged_in_admin(app, clock)
            announcement_id = compose(admin, subject="Letter", body="A letter.")
            page = f"/admin/announcements/{announcement_id}/documents/new"
            response = admin.post(page, data={
                "csrf_token": csrf_token(admin.get(page).get_data(as_text=True)),
                "document": (io.BytesIO(tiny_pdf(padding=200 * 1024)), "letter.pdf"),
            }, content_type="multipart/form-data")
            assert response.status_code == 507
            assert "There is not enough space on the server" in page_text(response)
            assert list(directory.iterdir()) == []
            with app.app_context():
                assert db.session.scalar(select(func.count()).select_from(Document)) == 0
    except PermissionError as exc:
        skip_or_fail(str(exc))


def _age(path: Path, clock: Any, **ago: float) -> None:
    import os
    from datetime import timedelta

    moment = (clock.now() - timedelta(**ago)).timestamp()
    os.utime(path, (moment, moment))


def _uploaded_and_applied(app: Any, admin: Any, import_dir: Path) -> tuple[Path, Path]:
    """One upload left waiting and one applied import's result: the two kinds of file an import leaves."""
    waiting = path_of(upload(admin, big_csv(2)).headers["Location"]).rsplit("/", 1)[1]
    applied_url = path_of(upload(admin, b"email\r\nsomeone@example.org\r\n").headers["Location"])
    assert admin_post(admin, applied_url, f"{applied_url}/apply").status_code == 303
    return import_dir / f"{waiting}.csv", import_dir / f"{applied_url.rsplit('/', 1)[1]}.result.json"


@pytest.mark.parametrize("how", ["flask purge", "daily housekeeping"])
def test_import_files_are_removed_after_a_day_by_purge_and_housekeeping(app, clock, import_dir, how):
    """Uploads, results and unfinished writes older than a day are deleted without waiting for the next upload;
    younger ones stay (the clock is frozen, the files' times set from it)."""
    from mailer.worker.process import housekeeping_job

    admin = logged_in_admin(app, clock)
    old_upload, old_result = _uploaded_and_applied(app, admin, import_dir)
    fresh_upload, fresh_result = _uploaded_and_applied(app, admin, import_dir)
    unfinished = import_dir / ".abc.csv.0000.part"
    unfinished.write_bytes(b"email\r\ncut-off@exa")
    for path in (old_upload, old_result, unfinished):
        _age(path, clock, hours=24, minutes=1)
    for path in (fresh_upload, fresh_result):
        _age(path, clock, hours=23)

    if how == "flask purge":
        ran = app.test_cli_runner().invoke(args=["purge"])
        assert ran.exit_code == 0, ran.output
        assert "removed 3 import file(s) more than a day old" in ran.output
    else:
        housekeeping_job(app, settings_of(app))
    assert sorted(import_dir.iterdir()) == sorted([fresh_upload, fresh_result])
    assert admin.get(f"/admin/members/import/{old_upload.stem}").status_code == 400  # "upload it again"


def test_a_result_file_names_nobody_so_an_erased_member_is_in_none(app, clock, import_dir):
    """Result files keep no address (the decision for issue 15): a member imported and then erased is not
    listed in the result that stays on disk for a day, nor on its page."""
    admin = logged_in_admin(app, clock)
    uploaded = upload(admin, b"email,name\r\nerase.me@example.org,Erase Me\r\nkept@example.org,Kept\r\n")
    preview_url = path_of(uploaded.headers["Location"])
    assert "erase.me@example.org" in admin.get(preview_url).get_data(as_text=True)  # the preview reads the upload
    result_url = path_of(admin_post(admin, preview_url, f"{preview_url}/apply").headers["Location"])
    with app.app_context():
        member_id = db.session.scalar(select(Member.id).where(Member.email == "erase.me@example.org"))
    erase = f"/admin/members/{member_id}/erase"
    assert admin_post(admin, erase, erase).status_code == 303
    files = list(import_dir.iterdir())
    assert [p.suffixes for p in files] == [[".result", ".json"]]
    stored = files[0].read_text(encoding="utf-8")
    page = admin.get(result_url).get_data(as_text=True)
    assert result_rows(page) == [(2, "new_pending"), (3, "new_pending")]
    for text in (stored, page):
        assert "erase.me" not in text and "Erase Me" not in text and "@example.org" not in text
