"""Migrations (P4, issue 10): an old database with data upgrades to head without losing anything,
`db downgrade` steps back one revision, and the migrations describe exactly the models."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import POSTGRES_URL, base_config, skip_or_fail
from flask import Flask
from flask_migrate import downgrade, upgrade
from sqlalchemy import (
    ForeignKeyConstraint,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    UniqueConstraint,
    create_engine,
    inspect,
    select,
    text,
)
from sqlalchemy.engine import make_url

from mailer import create_app
from mailer.extensions import db
from mailer.models import ConsentAction, ConsentEvent, Member, MemberStatus, OutboxMessage, OutboxState

FIRST = "0001"
JOINED = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
CONFIRMED = datetime(2026, 3, 5, 9, 30, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database with no tables at all: the migrations build it from the first revision."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.db'}"
        return
    if not POSTGRES_URL:
        skip_or_fail("TEST_POSTGRES_URL is not set")
    url = make_url(POSTGRES_URL)
    name = f"mig_{uuid.uuid4().hex[:10]}"
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def old_app(empty_database: str) -> Iterator[Any]:
    app = create_app(base_config(empty_database))
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def stamp(moment: datetime, dialect: str) -> str:
    """A timestamp literal as the first release wrote it: naive UTC on SQLite, timestamptz on PostgreSQL."""
    plain = moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    return plain if dialect == "sqlite" else f"{plain}+00"


def insert_release_one_data(dialect: str) -> None:
    """Rows the first release could hold, written with plain SQL (no model of today is involved).

    Ids come from the database, as they did in the app, so sequences are where the app left them."""
    joined, confirmed = stamp(JOINED, dialect), stamp(CONFIRMED, dialect)
    statements = [
        ("INSERT INTO member (email, email_key, name, status, social_media, token_version, bounce_count, "
         "created_at, updated_at, confirmed_at) VALUES "
         "('Zoe.Parent@example.org', 'zoe.parent@example.org', 'Zoë Parent', 'member', 'no', 2, 0, "
         ":joined, :confirmed, :confirmed), "
         "('sam@example.org', 'sam@example.org', 'Sam Carer', 'pending', 'prefer_not_to_say', 1, 0, "
         ":joined, :joined, NULL)"),
        "INSERT INTO member_group (member_id, group_id) VALUES (1, 1), (1, 3), (2, 2)",
        ("INSERT INTO consent_event (member_id, action, method, occurred_at, wording_id, email, ip_address, "
         "user_agent, detail) VALUES "
         "(1, 'requested', 'form', :joined, 1, 'Zoe.Parent@example.org', '203.0.113.7', 'Firefox', "
         "'{\"groups\": [1, 3]}'), "
         "(1, 'confirmed', 'email_link', :confirmed, 1, 'Zoe.Parent@example.org', '203.0.113.7', 'Firefox', NULL), "
         "(2, 'requested', 'form', :joined, 1, 'sam@example.org', NULL, NULL, NULL)"),
        "INSERT INTO suppression (address_hash, reason, created_at) VALUES (:hash, 'erased', :joined)",
        ("INSERT INTO outbox (kind, member_id, to_address, payload, state, attempts, created_at, next_attempt_at, "
         "claimed_at, claimed_by, sent_at, last_error) VALUES "
         "('welcome', 1, NULL, NULL, 'sent', 1, :confirmed, :confirmed, NULL, 'old-worker', :confirmed, NULL), "
         "('confirm', 2, NULL, NULL, 'pending', 2, :joined, :joined, NULL, NULL, NULL, '451 try later')"),
    ]
    params = {"joined": joined, "confirmed": confirmed, "hash": "ab" * 32}
    for statement in statements:
        db.session.execute(text(statement), params)
    db.session.commit()


def assert_release_one_data_is_intact() -> None:
    """Read through today's models: every row, value, time zone and relationship survived."""
    zoe = db.session.get(Member, 1)
    assert zoe is not None
    assert (zoe.email, zoe.name, zoe.status, zoe.token_version) == ("Zoe.Parent@example.org", "Zoë Parent",
                                                                    MemberStatus.MEMBER, 2)
    assert (zoe.created_at, zoe.confirmed_at) == (JOINED, CONFIRMED)
    assert [g.id for g in zoe.groups] == [1, 3]
    sam = db.session.get(Member, 2)
    assert sam is not None and sam.status is MemberStatus.PENDING and [g.id for g in sam.groups] == [2]
    events = list(db.session.scalars(select(ConsentEvent).order_by(ConsentEvent.id)))
    assert [(e.member_id, e.action) for e in events] == [
        (1, ConsentAction.REQUESTED), (1, ConsentAction.CONFIRMED), (2, ConsentAction.REQUESTED)
    ]
    assert events[0].detail == {"groups": [1, 3]} and events[0].occurred_at == JOINED
    assert events[0].wording is not None and events[0].wording.version == 1
    outbox = list(db.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))
    assert [(o.state, o.attempts, o.last_error) for o in outbox] == [
        (OutboxState.SENT, 1, None), (OutboxState.PENDING, 2, "451 try later")
    ]
    assert db.session.scalar(text("SELECT address_hash FROM suppression")) == "ab" * 32


def test_an_old_database_with_data_upgrades_to_head_without_losing_anything(old_app):
    """P4: a database made by the first release, with members, consent and outbox rows, upgrades to head;
    every row is still there and the app works on it (new ids continue after the old ones)."""
    with old_app.app_context():
        upgrade(revision=FIRST)
        insert_release_one_data(db.engine.dialect.name)
        upgrade()
        assert_release_one_data_is_intact()
        db.session.remove()
    client = old_app.test_client()
    assert client.get("/healthz").status_code == 200
    assert client.get("/join").status_code == 200
    with old_app.app_context():  # sequences were not reset by the upgrade: the next member gets id 3
        member = Member(email="new@example.org", email_key="new@example.org", created_at=JOINED, updated_at=JOINED)
        db.session.add(member)
        db.session.commit()
        assert member.id == 3


def test_db_downgrade_steps_back_one_revision_and_upgrade_returns(old_app):
    """P4: `db downgrade` undoes the latest migration only; upgrading again keeps the data."""
    with old_app.app_context():
        upgrade(revision=FIRST)
        insert_release_one_data(db.engine.dialect.name)
        upgrade()
        script_head = _current_revision()
        downgrade(revision="-1")
        after_downgrade = _current_revision()
        assert after_downgrade != script_head and after_downgrade is not None
        upgrade()
        assert _current_revision() == script_head
        assert_release_one_data_is_intact()


def _current_revision() -> str | None:
    db.session.remove()
    with db.engine.connect() as conn:
        return conn.scalar(text("SELECT version_num FROM alembic_version"))


def test_flask_db_check_finds_no_difference_between_models_and_migrations(database_uri: str) -> None:
    """P4: every model change has a migration: `flask db check` (alembic check) on a migrated SQLite and PostgreSQL
    database reports nothing to add, and every constraint and index has the name the models give it (issue 16)."""
    app = create_app(base_config(database_uri))
    try:
        result = app.test_cli_runner().invoke(args=["db", "check"])
        assert result.exit_code == 0, result.output
        with app.app_context():
            assert_names_are_the_models_names()
    finally:
        with app.app_context():
            db.engine.dispose()


def test_upgrade_gives_every_member_a_link_key_and_ids_are_never_reused(old_app):
    """Issue 15: after 0008 every existing member has a distinct random link key, their consent and groups
    survive the member table's rebuild, and deleting the newest member does not free its id for the next."""
    with old_app.app_context():
        upgrade(revision=FIRST)
        insert_release_one_data(db.engine.dialect.name)
        upgrade()
        keys = list(db.session.scalars(select(Member.link_key).order_by(Member.id)))
        assert len(keys) == 2 and len(set(keys)) == 2 and all(len(key) >= 16 for key in keys)
        assert_release_one_data_is_intact()
        db.session.execute(text("DELETE FROM member WHERE id = 2"))
        db.session.commit()
        newcomer = Member(email="next@example.org", email_key="next@example.org", created_at=JOINED, updated_at=JOINED)
        db.session.add(newcomer)
        db.session.commit()
        assert newcomer.id == 3, "the erased member's id 2 is not handed out again"
        assert newcomer.link_key not in keys
        db.session.remove()


def test_upgrade_keeps_announcements_deliveries_and_outbox_and_their_ids_are_never_reused(old_app):
    """Issue 15: VERP addresses sign delivery and outbox ids and the archive links announcement ids; after 0011
    the rows (and the bounces and groups pointing at them) survive the rebuild, and deleting the newest row of
    each table does not free its id for the next one."""
    with old_app.app_context():
        dialect = db.engine.dialect.name
        upgrade(revision=FIRST)
        insert_release_one_data(dialect)
        upgrade(revision="0010")
        now = stamp(CONFIRMED, dialect)
        statements = [
            ("INSERT INTO announcement (subject, body_markdown, only_without_social_media, state, created_at, "
             "updated_at, is_public, recipient_count) VALUES "
             "('Council letter', 'Hello', false, 'sent', :now, :now, true, 2), "
             "('Survey', 'Please answer', false, 'sent', :now, :now, false, 2)"),
            "INSERT INTO announcement_group (announcement_id, group_id) VALUES (1, 1), (2, 2)",
            ("INSERT INTO delivery (announcement_id, member_id, state, attempts, next_attempt_at, sent_at) VALUES "
             "(1, 1, 'sent', 1, :now, :now), (2, 1, 'sent', 1, :now, :now), (2, 2, 'sent', 1, :now, :now)"),
            ("INSERT INTO bounce_event (source_key, member_id, delivery_id, outbox_id, kind, reason, occurred_at) "
             "VALUES ('permanent:d3', 2, 3, NULL, 'permanent', '550 no such user', :now), "
             "('permanent:o2', 2, NULL, 2, 'permanent', '550 no such user', :now)"),
        ]
        for statement in statements:
            db.session.execute(text(statement), {"now": now})
        db.session.commit()
        upgrade()
        assert_release_one_data_is_intact()
        assert list(db.session.execute(text("SELECT id, subject FROM announcement ORDER BY id"))) == [
            (1, "Council letter"), (2, "Survey")]
        assert list(
            db.session.execute(text("SELECT announcement_id, group_id FROM announcement_group ORDER BY 1"))
        ) == [(1, 1), (2, 2)]
        assert list(db.session.execute(text("SELECT id, announcement_id, member_id FROM delivery ORDER BY id"))) == [
            (1, 1, 1), (2, 2, 1), (3, 2, 2)]
        assert list(db.session.execute(text("SELECT delivery_id, outbox_id FROM bounce_event ORDER BY id"))) == [
            (3, None), (None, 2)]
        if dialect == "sqlite":
            assert list(db.session.execute(text("PRAGMA foreign_key_check"))) == []
            for table in ("announcement", "delivery", "outbox", "member"):
                sql = db.session.scalar(text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = :t"),
                                        {"t": table})
                assert "AUTOINCREMENT" in sql, table

        db.session.execute(text("DELETE FROM delivery WHERE id = 3"))
        db.session.execute(text("DELETE FROM outbox WHERE id = 2"))
        db.session.execute(text("DELETE FROM announcement WHERE id = 2"))
        db.session.commit()
        assert db.session.scalar(text("SELECT count(*) FROM delivery")) == 1  # the cascade still works
        db.session.execute(text(
            "INSERT INTO announcement (subject, body_markdown, only_without_social_media, state, created_at, "
            "updated_at, is_public, recipient_count) VALUES ('Next', 'x', false, 'draft', :now, :now, false, 0)"),
            {"now": now})
        db.session.execute(text(
            "INSERT INTO delivery (announcement_id, member_id, state, attempts, next_attempt_at) "
            "VALUES (1, 2, 'pending', 0, :now)"), {"now": now})
        db.session.execute(text(
            "INSERT INTO outbox (kind, member_id, state, attempts, created_at, next_attempt_at) "
            "VALUES ('confirm', 2, 'pending', 0, :now, :now)"), {"now": now})
        db.session.commit()
        assert db.session.scalar(text("SELECT max(id) FROM announcement")) == 3
        assert db.session.scalar(text("SELECT max(id) FROM delivery")) == 4
        assert db.session.scalar(text("SELECT max(id) FROM outbox")) == 3
        db.session.remove()


AUTOINCREMENT_TABLES = ("member", "announcement", "delivery", "outbox", "member_departure")


def constraint_names(table: Table) -> dict[tuple[str, tuple[str, ...]], str | None]:
    """The models' name for each primary key, foreign key, unique constraint and index of a table."""
    kinds = {PrimaryKeyConstraint: "pk", ForeignKeyConstraint: "fk", UniqueConstraint: "uq"}
    names: dict[tuple[str, tuple[str, ...]], str | None] = {}
    for constraint in table.constraints:
        if isinstance(constraint, PrimaryKeyConstraint | ForeignKeyConstraint | UniqueConstraint):
            columns = tuple(c.name for c in constraint.columns)
            names[(kinds[type(constraint)], columns)] = str(constraint.name) if constraint.name else None
    for index in table.indexes:
        names[("ix", tuple(c.name for c in index.columns))] = str(index.name) if index.name else None
    return names


def reflected_names(table: str) -> dict[tuple[str, tuple[str, ...]], str | None]:
    """The same, as the database holds them (sqlalchemy.inspect); indexes behind unique constraints left out."""
    inspector = inspect(db.engine)
    pk = inspector.get_pk_constraint(table)
    names: dict[tuple[str, tuple[str, ...]], str | None] = {("pk", tuple(pk["constrained_columns"])): pk["name"]}
    for fk in inspector.get_foreign_keys(table):
        names[("fk", tuple(fk["constrained_columns"]))] = fk["name"]
    for uq in inspector.get_unique_constraints(table):
        names[("uq", tuple(uq["column_names"]))] = uq["name"]
    for ix in inspector.get_indexes(table):
        if not ix.get("duplicates_constraint"):
            names[("ix", tuple(str(c) for c in ix["column_names"]))] = ix["name"]
    return names


def assert_names_are_the_models_names() -> None:
    """Every constraint and index in the database has the name the models give it: the naming convention's, or the
    model's explicit one. SQLite writes an AUTOINCREMENT table's primary key inline, where it has no name."""
    for table in db.metadata.sorted_tables:
        expected = constraint_names(table)
        for (kind, _columns), name in expected.items():
            assert name is not None and name.startswith(f"{kind}_"), (table.name, kind, name)
        if db.engine.dialect.name == "sqlite" and (
            table.name in AUTOINCREMENT_TABLES or table.dialect_options["sqlite"].get("autoincrement")
        ):
            expected[("pk", ("id",))] = None
        assert reflected_names(table.name) == expected, table.name


def insert_a_row_in_every_table_left_empty(dialect: str) -> None:
    """After release one's rows: admins, announcements, deliveries, bounces, documents, join requests, rate limits
    and heartbeats, in plain SQL; then the newest member, announcement, delivery and outbox row are deleted again."""
    now = stamp(CONFIRMED, dialect)
    statements = [
        ("INSERT INTO admin (email, password_hash, created_at, last_login_at, session_version) VALUES "
         "('chair@example.org', 'scrypt:hash', :now, NULL, 1)"),
        ("INSERT INTO member (email, email_key, name, status, social_media, token_version, bounce_count, created_at, "
        "updated_at, link_key) VALUES ('gone@example.org', 'gone@example.org', '', 'pending', 'no', 1, 0, :now, :now, "
        "'erased-key')"),
        ("INSERT INTO announcement (subject, body_markdown, only_without_social_media, state, created_at, updated_at, "
         "created_by_id, is_public, recipient_count) VALUES "
         "('Council letter', 'Hello', false, 'sent', :now, :now, 1, true, 2), "
         "('Deleted draft', 'x', false, 'draft', :now, :now, 1, false, 0)"),
        "INSERT INTO announcement_group (announcement_id, group_id) VALUES (1, 1)",
        ("INSERT INTO delivery (announcement_id, member_id, state, attempts, next_attempt_at, sent_at) VALUES "
         "(1, 1, 'sent', 1, :now, :now), (1, 2, 'failed', 3, :now, NULL), (1, NULL, 'skipped', 0, :now, NULL)"),
        ("INSERT INTO bounce_message (received_at, source, mail_from, rcpt_to, raw, size, processed_at, outcome, "
         "detail, delivery_id, outbox_id) VALUES (:now, 'smtp', '', 'bounce@example.org', :raw, 9, :now, 'matched', "
         "NULL, 2, NULL)"),
        ("INSERT INTO bounce_event (source_key, member_id, delivery_id, outbox_id, bounce_message_id, kind, reason, "
         "occurred_at) VALUES ('permanent:d2', 2, 2, NULL, 1, 'permanent', '550 no such user', :now)"),
        ("INSERT INTO document (public_id, announcement_id, title, file_name, kind, size_bytes, storage_name, "
         "created_at) VALUES ('pub-1', 1, 'Letter', 'letter.pdf', 'pdf', 1234, 'stored-1', :now)"),
        ("INSERT INTO join_request (email, name, social_media, group_ids, ip_address, user_agent, created_at) VALUES "
         "('kim@example.org', 'Kim', 'yes', '[1, 2]', '198.51.100.4', 'Safari', :now)"),
        "INSERT INTO rate_limit (key, expires_at, count) VALUES ('login:198.51.100.4', :now, 3)",
        "INSERT INTO worker_heartbeat (worker_id, last_tick_at) VALUES ('worker-1', :now)",
        ("INSERT INTO outbox (kind, member_id, state, attempts, created_at, next_attempt_at) VALUES "
        "('confirm', 3, 'pending', 0, :now, :now)"),
        # The newest rows go again: their ids (3, 2, 3 and 3) must never be handed out again.
        "DELETE FROM outbox WHERE id = 3",
        "DELETE FROM delivery WHERE id = 3",
        "DELETE FROM announcement WHERE id = 2",
        "DELETE FROM member WHERE id = 3",
    ]
    for statement in statements:
        db.session.execute(text(statement), {"now": now, "raw": b"From: x\r\n"})
    db.session.commit()


def every_row(columns: dict[str, list[str]]) -> dict[str, list[tuple[Any, ...]]]:
    """Each named table's rows in the named columns, as the database returns them (later migrations may add
    tables and columns; the rows that were there must come through unchanged)."""
    rows = {}
    for table, names in columns.items():
        selected = ", ".join(f'"{name}"' for name in names)
        result = db.session.execute(text(f'SELECT {selected} FROM "{table}" ORDER BY 1, 2'))
        rows[table] = [tuple(bytes(v) if isinstance(v, memoryview) else v for v in row) for row in result]
    return rows


def columns_now() -> dict[str, list[str]]:
    """The application tables the database holds now, with their columns."""
    inspector = inspect(db.engine)
    present = set(inspector.get_table_names())
    return {table.name: [column["name"] for column in inspector.get_columns(table.name)]
            for table in db.metadata.sorted_tables if table.name in present}


def test_upgrade_gives_every_constraint_its_conventional_name_and_keeps_every_row(
    old_app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 16: a database the previous release built (names PostgreSQL chose, or none on SQLite), with rows in
    every table, upgrades through 0012: every constraint and index then has the model's name, `db check` is clean,
    every row is still there, AUTOINCREMENT survives and deleted ids are still not handed out again."""
    # The previous release's models had no naming convention, and migrations take theirs from the models.
    monkeypatch.setattr(db.metadata, "naming_convention", MetaData().naming_convention)
    with old_app.app_context():
        dialect = db.engine.dialect.name
        upgrade(revision=FIRST)
        insert_release_one_data(dialect)
        upgrade(revision="0011")
        monkeypatch.undo()
        insert_a_row_in_every_table_left_empty(dialect)
        old_columns = columns_now()
        before = every_row(old_columns)
        assert all(before.values()), [table for table, rows in before.items() if not rows]
        old_pk = reflected_names("member")[("pk", ("id",))]
        assert old_pk == ("member_pkey" if dialect == "postgresql" else None)
        assert reflected_names("consent_event")[("fk", ("member_id",))] != "fk_consent_event_member_id_member"
        db.session.remove()

        upgrade()
        assert every_row(old_columns) == before
        assert_names_are_the_models_names()
        if dialect == "sqlite":
            assert list(db.session.execute(text("PRAGMA foreign_key_check"))) == []
            for table in AUTOINCREMENT_TABLES:
                sql = db.session.scalar(text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = :t"),
                                        {"t": table})
                assert "AUTOINCREMENT" in sql, table
        now = stamp(CONFIRMED, dialect)
        new_ids = [
            db.session.scalar(text(statement), {"now": now}) for statement in (
                ("INSERT INTO member (email, email_key, name, status, social_media, token_version, bounce_count, "
                "created_at, updated_at, link_key) VALUES ('new@example.org', 'new@example.org', '', 'pending', "
                "'no', 1, 0, :now, :now, 'new-key') RETURNING id"),
                ("INSERT INTO announcement (subject, body_markdown, only_without_social_media, state, created_at, "
                "updated_at, is_public, recipient_count) VALUES ('Next', 'x', false, 'draft', :now, :now, false, 0) "
                "RETURNING id"),
                ("INSERT INTO delivery (announcement_id, member_id, state, attempts, next_attempt_at) VALUES "
                "(1, NULL, 'pending', 0, :now) RETURNING id"),
                ("INSERT INTO outbox (kind, member_id, state, attempts, created_at, next_attempt_at) VALUES "
                "('confirm', 1, 'pending', 0, :now, :now) RETURNING id"),
            )
        ]
        db.session.commit()
        assert new_ids == [4, 3, 4, 4], "no deleted member, announcement, delivery or outbox id is reused"
        db.session.remove()
    result = old_app.test_cli_runner().invoke(args=["db", "check"])
    assert result.exit_code == 0, result.output
    with old_app.app_context():
        db.session.remove()
        downgrade(revision="0011")
        if dialect == "postgresql":  # best effort: PostgreSQL's own names, as before 0012
            assert reflected_names("member")[("uq", ("link_key",))] == "member_link_key_key"
            assert reflected_names("consent_event")[("fk", ("member_id",))] == "consent_event_member_id_fkey"
        upgrade()
        assert_names_are_the_models_names()
