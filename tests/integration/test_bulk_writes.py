"""One code path for consent events and outbox rows (issue 16.5, C1, S6): the bulk forms write what the single
forms write, and a CSV import writes the rows a single join would, on SQLite and PostgreSQL."""

from __future__ import annotations

import io
from typing import Any

from sqlalchemy import delete, select, text

from mailer.extensions import db
from mailer.mail.outbox import QueuedMail, enqueue_mail, enqueue_mails
from mailer.members.consent import ConsentRecord, Evidence, current_wording, record_consent, record_consents
from mailer.members.csv.apply import ImportSettings, apply_import
from mailer.members.csv.parse import read_lines
from mailer.members.membership import JoinDetails, request_join
from mailer.models import ConsentAction, ConsentEvent, ConsentMethod, MailKind, Member, OutboxMessage, SocialMedia
from mailer.settings import settings_of
from support.factories import add_members

EVENT_COLUMNS = (
    "member_id, action, method, occurred_at, wording_id, email, ip_address, user_agent, detail, detail IS NULL"
)
OUTBOX_COLUMNS = (
    "kind, member_id, to_address, payload, payload IS NULL, state, attempts, created_at, next_attempt_at, "
    "claimed_at, claimed_by, sent_at, last_error"
)


def stored(table: str, columns: str) -> list[tuple[Any, ...]]:
    """Rows as the database holds them (raw SQL, so JSON 'null' and SQL NULL stay apart), in id order."""
    return [tuple(row) for row in db.session.execute(text(f"SELECT {columns} FROM {table} ORDER BY id"))]


def test_consent_events_for_many_members_in_one_call_equal_one_call_each(app, clock):
    """record_consents with N records writes exactly the rows N record_consent calls write, evidence cleaned alike."""
    member_ids = add_members(app, clock, 4, prefix="consent")
    with app.app_context():
        wording = current_wording(db.session)
        members = [db.session.get(Member, member_id) for member_id in member_ids]
        cases: list[tuple[Member, ConsentAction, Evidence, bool, dict[str, Any] | None]] = [
            (members[0], ConsentAction.REQUESTED,
             Evidence(ConsentMethod.FORM, "2001:db8::1" + "0" * 60, "Mozilla\x00/5.0\x1b" + "x" * 400), True,
             {"groups": ["Forum news"], "wording_as_shown": "Yes, email me."}),
            (members[1], ConsentAction.IMPORTED, Evidence(ConsentMethod.IMPORT), False,
             {"line": 2, "imported_by_admin_id": None, "evidence": {"consent_date": "2025-09-14"}}),
            (members[2], ConsentAction.WITHDRAWN, Evidence(ConsentMethod.ONE_CLICK, "", ""), False, None),
            (members[3], ConsentAction.SUPPRESSED, Evidence(ConsentMethod.SYSTEM), False, {"reason": "complaint"}),
        ]
        for member, action, evidence, worded, detail in cases:
            record_consent(db.session, member, action, evidence, clock=clock,
                           wording=wording if worded else None, detail=detail)
        db.session.commit()
        one_each = stored("consent_event", EVENT_COLUMNS)
        db.session.execute(delete(ConsentEvent))
        record_consents(
            db.session,
            [ConsentRecord(m.id, m.email, action, evidence, wording.id if worded else None, detail)
             for m, action, evidence, worded, detail in cases],
            clock=clock,
        )
        db.session.commit()
        in_one_call = stored("consent_event", EVENT_COLUMNS)
    assert len(one_each) == 4
    assert in_one_call == one_each
    ip_address, user_agent = one_each[0][6], one_each[0][7]
    assert len(ip_address) == 45 and "\x00" not in user_agent and len(user_agent) == 300
    assert one_each[2][6:8] == (None, None)


def test_outbox_rows_for_many_mails_in_one_call_equal_one_call_each(app, clock):
    """enqueue_mails with N mails writes exactly the rows N enqueue_mail calls write, payloads included."""
    member_ids = add_members(app, clock, 3, prefix="outbox")
    mails = [
        QueuedMail(MailKind.CONFIRM, member_id=member_ids[0]),
        QueuedMail(MailKind.WELCOME, member_id=member_ids[1]),
        QueuedMail(MailKind.TEST, to_address="admin@forum.example", payload={"announcement_id": 7}),
        QueuedMail(MailKind.PREFERENCES_LINK, member_id=member_ids[2]),
    ]
    with app.app_context():
        for mail in mails:
            enqueue_mail(db.session, mail.kind, clock=clock, member_id=mail.member_id, to_address=mail.to_address,
                         payload=mail.payload)
        db.session.commit()
        one_each = stored("outbox", OUTBOX_COLUMNS)
        db.session.execute(delete(OutboxMessage))
        enqueue_mails(db.session, mails, clock=clock)
        db.session.commit()
        in_one_call = stored("outbox", OUTBOX_COLUMNS)
    assert len(one_each) == 4
    assert in_one_call == one_each
    assert [row[4] for row in one_each] == [True, True, False, True]  # no payload is SQL NULL, not JSON 'null'


def test_import_writes_the_consent_events_a_single_record_consent_would(app, clock):
    """An import's consent evidence rows are exactly record_consent's for the same facts: method import, action
    imported (evidence in the file) or withdrawn (the file says they left), the row's evidence unchanged in detail,
    no wording, and a pending row gets none; its confirmations are enqueue_mail's rows at their spread send times."""
    data = (
        "email,name,status,consent_date,consent_source,consent_wording\r\n"
        "evidence@example.org,Ev,,14/09/2025,Paper sheet,\"Yes, email me.\nSigned.\"\r\n"
        "left@example.org,Left,unsubscribed,,,\r\n"
        "pending@example.org,Pending,,,,\r\n"
        "both@example.org,Both,unsubscribed,2025-01-02,Coffee morning,\r\n"
    )
    settings = settings_of(app).import_settings
    with app.app_context():
        apply_import(db.session, read_lines(io.BytesIO(data.encode())), settings=settings, clock=clock, admin_id=None)
        imported_events = stored("consent_event", EVENT_COLUMNS)
        imported_mail = stored("outbox", OUTBOX_COLUMNS)
        by_email = {m.email: m for m in db.session.scalars(select(Member))}
        confirm_at = by_email["pending@example.org"].last_confirmation_sent_at
        db.session.execute(delete(ConsentEvent))
        db.session.execute(delete(OutboxMessage))
        imported = Evidence(ConsentMethod.IMPORT)
        record_consent(db.session, by_email["evidence@example.org"], ConsentAction.IMPORTED, imported, clock=clock,
                       detail={"line": 2, "imported_by_admin_id": None, "evidence": {
                           "consent_date": "14/09/2025", "consent_source": "Paper sheet",
                           "consent_wording": "Yes, email me.\nSigned."}})
        record_consent(db.session, by_email["left@example.org"], ConsentAction.WITHDRAWN, imported, clock=clock,
                       detail={"line": 4, "imported_by_admin_id": None,
                               "note": "the imported file says they left the list"})
        record_consent(db.session, by_email["both@example.org"], ConsentAction.WITHDRAWN, imported, clock=clock,
                       detail={"line": 6, "imported_by_admin_id": None, "evidence": {
                           "consent_date": "2025-01-02", "consent_source": "Coffee morning", "consent_wording": ""},
                           "note": "the imported file says they left the list"})
        enqueues = [QueuedMail(MailKind.CONFIRM, member_id=by_email["pending@example.org"].id, send_at=confirm_at)]
        enqueue_mails(db.session, enqueues, clock=clock)
        db.session.commit()
        single_events = stored("consent_event", EVENT_COLUMNS)
        single_mail = stored("outbox", OUTBOX_COLUMNS)
    assert imported_events == single_events
    assert [(row[1], row[2], row[4]) for row in imported_events] == [
        ("imported", "import", None), ("withdrawn", "import", None), ("withdrawn", "import", None)
    ]
    assert imported_mail == single_mail and len(single_mail) == 1


def test_an_imported_pending_member_is_the_row_a_join_creates(app, clock):
    """A pending row from a file and a join form post for the same facts leave the same member row (defaults for
    the link key, token version and bounce count included) and the same confirmation mail."""
    settings = settings_of(app)
    columns = ("name, status, social_media, token_version, bounce_count, created_at, updated_at, confirmed_at, "
               "unsubscribed_at, last_confirmation_sent_at, length(link_key)")
    with app.app_context():
        request_join(db.session, JoinDetails("joined@example.org", "Same Name", SocialMedia.NO), Evidence(
            ConsentMethod.FORM), policy=settings.membership_policy, clock=clock)
        db.session.commit()
        data = b"email,name,social_media\r\nimported@example.org,Same Name,no\r\n"
        unspread = ImportSettings(settings.import_settings.suppression_key, confirmations_per_minute=0)
        apply_import(db.session, read_lines(io.BytesIO(data)), settings=unspread, clock=clock)
        joined, imported = stored("member", columns)
        mails = stored("outbox", "kind, state, attempts, created_at, next_attempt_at, payload IS NULL")
    assert joined == imported
    assert mails[0] == mails[1]
