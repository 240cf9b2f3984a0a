"""mailer.members.csv (parse, plan, apply, export) on its own (J6): reading files, refusing bad ones, row rules,
streaming, spreading mail out.

These run on SQLite only: the rules are the same on both backends, and the
integration tests run the whole import on PostgreSQL too."""

from __future__ import annotations

import io
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from mailer.errors import InvalidInput
from mailer.extensions import db
from mailer.members.csv.apply import ImportSettings, apply_import
from mailer.members.csv.export import export_lines
from mailer.members.csv.parse import EXPORT_COLUMNS, AddressNormaliser, neutralise, read_lines, unneutralise
from mailer.members.csv.plan import ImportSummary, Outcome, RowOutcome, plan_import
from mailer.models import ConsentEvent, Member, OutboxMessage
from mailer.settings import settings_of

sqlite_only = pytest.mark.parametrize("database_uri", ["sqlite"], indirect=True)


def settings(app: Any, per_minute: float = 60) -> ImportSettings:
    base = settings_of(app).import_settings
    return ImportSettings(base.suppression_key, per_minute, chunk_size=base.chunk_size)


def plan(app: Any, clock: Any, data: str | bytes, **kw: Any) -> list[RowOutcome]:
    raw = data if isinstance(data, bytes) else data.encode("utf-8")
    with app.app_context():
        return list(
            plan_import(
                db.session, read_lines(io.BytesIO(raw)),
                suppression_key=settings(app).suppression_key, clock=clock, **kw,
            )
        )


def table_counts(app: Any) -> tuple[int, int, int]:
    with app.app_context():
        return tuple(  # type: ignore[return-value]
            db.session.scalar(select(func.count()).select_from(m)) for m in (Member, ConsentEvent, OutboxMessage)
        )


@pytest.mark.parametrize(
    ("cell", "written"),
    [
        ("=HYPERLINK(\"http://evil.example\",\"x\")", "'=HYPERLINK(\"http://evil.example\",\"x\")"),
        ("+44 7700 900123", "'+44 7700 900123"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tcmd", "'\tcmd"),
        ("\rcmd", "'\rcmd"),
        ("Zoë O'Neill", "Zoë O'Neill"),
        ("", ""),
    ],
)
def test_formula_cells_get_a_quote_that_import_takes_off(cell, written):
    """Cells a spreadsheet would run as formulas are neutralised on export and restored exactly on import."""
    assert neutralise(cell) == written
    assert unneutralise(written) == cell


BAD_FILES = [
    ("Email,Name\nzoë@example.org,Zoë\n".encode("latin-1"), "not saved as UTF-8"),
    (b"", "The file is empty"),
    (b"\r\n \r\n", "The file is empty"),
    (b"email,name\r\n", "no members under it"),
    (b"Name,Phone\r\nZoe,0161\r\n", "no email column"),
    (b"email,phone\r\nzoe@example.org,0161\r\n", "columns this import does not know: phone"),
    (b"email,Email\r\nzoe@example.org,z@example.org\r\n", "the column email more than once"),
    (b"email,name\r\n\"zoe\"x@example.org,Zoe\r\n", "Line 2 of the file could not be read as CSV"),
    (b"email,name\r\n\"zoe@example.org,Zoe\r\n", "could not be read as CSV"),
    (b"\xff\xfee\x00m\x00a\x00i\x00l\x00", "not saved as UTF-8"),  # a UTF-16 spreadsheet export
]


@sqlite_only
@pytest.mark.parametrize(("data", "message"), BAD_FILES)
def test_unreadable_files_are_refused_whole_with_a_clear_message(app, clock, data, message):
    """Non-UTF-8, empty, wrong columns, broken CSV: InvalidInput saying what to do, and nothing imported."""
    with pytest.raises(InvalidInput, match=message):
        plan(app, clock, data)
    before = table_counts(app)
    with app.app_context(), pytest.raises(InvalidInput, match=message):
        apply_import(
            db.session, read_lines(io.BytesIO(data)), settings=settings(app), clock=clock
        )
    assert table_counts(app) == before == (0, 0, 0)


@sqlite_only
def test_each_row_gets_an_outcome_with_its_line_number(app, clock):
    """Header names in any case; a quoted cell over two lines keeps later line numbers right; reasons are specific."""
    data = (
        "\ufeffE-mail Address,NAME,Groups,Social Media,Consent Date,Consent Source,Consent Wording\r\n"
        "new@example.org,New Person,forum NEWS; Voice and Influence group,No,,,\r\n"  # line 2
        "evidence@example.org,\"Ev\"\"i\"\"dence\",,,14/09/2025,Paper sheet,\"Yes, email me.\nSigned.\"\r\n"  # 3-4
        "not an address,X,,,,,\r\n"  # 5
        ",No Address,,,,,\r\n"  # 6
        "NEW@example.org,Again,,,,,\r\n"  # 7
        "group@example.org,G,Knitting,,,,\r\n"  # 8
        "social@example.org,S,,sometimes,,,\r\n"  # 9
        "half@example.org,H,,,2025-01-01,,\r\n"  # 10
        "future@example.org,F,,,2099-01-01,Website,\r\n"  # 11
        "baddate@example.org,B,,,last spring,Website,\r\n"  # 12
        "long@example.org," + "n" * 101 + ",,,,,\r\n"  # 13
        "wide@example.org,W,,,,,,extra\r\n"  # 14
        ",,,,,,\r\n"  # 15: blank, skipped
        "'+last@example.org,'=Last,,prefer not to say,,,\r\n"  # 16
    )
    rows = plan(app, clock, data)
    got = [(r.line, r.email, r.outcome.value, r.describe()) for r in rows]
    assert got == [
        (2, "new@example.org", "new_pending", "will be added and sent an email asking them to confirm"),
        (3, "evidence@example.org", "new_member_with_evidence",
         "will be added as members, using the consent evidence in the file"),
        (5, "not an address", "invalid", "the email address is not valid"),
        (6, "", "invalid", "there is no email address"),
        (7, "NEW@example.org", "duplicate", "the same address as line 2"),
        (8, "group@example.org", "invalid",
         "there is no group called “Knitting” (the groups are: Forum news; Local Offer working group; "
         "Voice and Influence group)"),
        (9, "social@example.org", "invalid", "social_media must be yes, no or prefer_not_to_say (or left blank)"),
        (10, "half@example.org", "invalid", "consent evidence needs both a consent_date and a consent_source"),
        (11, "future@example.org", "invalid", "the consent_date is in the future"),
        (12, "baddate@example.org", "invalid",
         "the consent_date is not a date (write it like 2025-09-14 or 14/09/2025)"),
        (13, "long@example.org", "invalid", "the name is longer than 100 characters"),
        (14, "wide@example.org", "invalid", "the row has 8 cells but there are only 7 columns"),
        (16, "+last@example.org", "new_pending", "will be added and sent an email asking them to confirm"),
    ]


@sqlite_only
def test_plan_streams_the_file_a_chunk_at_a_time(app, clock):
    """The first outcomes come out after one chunk is read, not after the whole file: memory stays flat."""
    consumed = 0

    def lines():
        nonlocal consumed
        yield "email,name\n"
        for i in range(10_000):
            consumed += 1
            yield f"person{i}@example.org,Person {i}\n"

    with app.app_context():
        outcomes = plan_import(
            db.session, lines(), suppression_key=settings(app).suppression_key, clock=clock, chunk_size=100
        )
        first = next(outcomes)
        assert first.line == 2 and first.outcome is Outcome.NEW_PENDING
        assert consumed <= 101
        assert sum(1 for _ in outcomes) == 9_999


@sqlite_only
def test_confirmations_are_spread_out_and_a_second_import_queues_behind(app, clock):
    """At 2 a minute, send times are 30 s apart, and the next import starts after the last one queued."""
    def run(data: str) -> ImportSummary:
        with app.app_context():
            return apply_import(
                db.session, io.StringIO(data), settings=settings(app, per_minute=2), clock=clock
            )

    first = run("email\na@example.org\nb@example.org\nc@example.org\n")
    second = run("email\nd@example.org\n")
    start = clock.now()
    with app.app_context():
        times = db.session.scalars(select(OutboxMessage.next_attempt_at).order_by(OutboxMessage.id)).all()
        throttle = db.session.scalars(select(Member.last_confirmation_sent_at).order_by(Member.id)).all()
    assert times == [start + timedelta(seconds=30 * i) for i in range(4)]
    assert throttle == times  # a resend cannot overtake the queued request
    assert (first.first_confirmation_at, first.last_confirmation_at) == (start, start + timedelta(seconds=60))
    assert second.first_confirmation_at == start + timedelta(seconds=90)


@sqlite_only
def test_export_streams_keyset_batches_with_header_and_crlf(app, clock):
    """The export is a generator: header first, one CRLF line per member, batches by id, formulas neutralised."""
    from support.factories import add_member

    with app.app_context():
        for i in range(5):
            add_member(f"p{i}@example.org", clock=clock, name=f"=cmd|' /C calc'!A{i}", groups=[2, 1])
        lines = export_lines(db.session, batch_size=2)
        assert next(lines) == ",".join(EXPORT_COLUMNS) + "\r\n"
        rest = list(lines)
    assert len(rest) == 5 and all(line.endswith("\r\n") for line in rest)
    assert rest[0].startswith("p0@example.org,'=cmd|' /C calc'!A0,member,Forum news;Local Offer working group,yes,")


TRICKY_ADDRESSES = [
    "Zoe.Parent@Example.ORG", "  padded@example.org  ", "postmaster@example.org", "Postmaster@Example.org",
    "o'neill+forum@example.co.uk", "a..b@example.org", ".a@example.org", "a.@example.org", "a@example",
    "a@localhost", "a@example.invalid", "a@xn--bcher-kva.example", "a@bücher.example", "ü@example.org",
    "\"quoted\"@example.org", "Name <a@example.org>", "a@[127.0.0.1]", "a@-example.org", "a@example..org",
    "a@example.org.", "a@b@example.org", "a@123.456", "x" * 64 + "@example.org", "x" * 65 + "@example.org",
    "a@" + "b" * 63 + ".org", "a@" + "b" * 64 + ".org", "a" * 60 + "@" + ("b" * 60 + ".") * 3 + "org",
    "a" * 64 + "@" + ("b" * 61 + ".") * 3 + "org", "a@exa_mple.org", "a b@example.org", "a@example.org\n",
    "=cmd@example.org", "",
]


@pytest.mark.parametrize("raw", TRICKY_ADDRESSES)
def test_import_address_check_agrees_with_the_join_form(raw):
    """The import's cached address check gives exactly normalise_address's answer, refusals included, so the
    same person never gets two keys (one from the form, one from a file)."""
    from mailer.members.addresses import normalise_address

    try:
        expected: tuple[str, str] | type[InvalidInput] = normalise_address(raw)
    except InvalidInput:
        expected = InvalidInput
    normaliser = AddressNormaliser()
    for _ in range(2):  # the second time the domain's answer comes from the cache
        try:
            got: tuple[str, str] | type[InvalidInput] = normaliser.normalise(raw)
        except InvalidInput:
            got = InvalidInput
        assert got == expected
