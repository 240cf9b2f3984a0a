"""constraint and index names follow the naming convention (issue 16)

mailer.extensions now gives the models' metadata SQLAlchemy's standard naming convention (pk_<table>,
fk_<table>_<column>_<referred table>, uq_<table>_<column>, ix_<table>_<column>), so a migration can name any
constraint it alters or drops, on both databases. Databases built before that hold the names PostgreSQL chose
itself (member_pkey, member_email_key_key, consent_event_member_id_fkey) or, on SQLite, no names at all. Databases
built after it already have most conventional names (alembic applies the models' convention to 0001-0011 too), but
not all (0008 names member_link_key_key on PostgreSQL). So this migration reads what the database holds and renames
whatever differs from the convention:

- PostgreSQL: ALTER TABLE ... RENAME CONSTRAINT and ALTER INDEX ... RENAME; nothing is rebuilt or copied.
- SQLite keeps a constraint's name only in the table's CREATE TABLE text, so every table with an unnamed or
  misnamed constraint is rebuilt (batch mode, foreign keys off as in 0008 and 0011), the convention naming the
  unnamed ones. AUTOINCREMENT is kept where the table has it, and so is its sqlite_sequence high-water mark (a
  rebuild would otherwise reset it to the highest id still present, handing a deleted row's id out again). SQLite
  cannot name the primary key of an AUTOINCREMENT table (it is written inline: `id INTEGER PRIMARY KEY
  AUTOINCREMENT`): those four primary keys stay unnamed.

Names the models give explicitly stay as they are (uq_delivery_announcement_member, ix_delivery_due, ix_outbox_due).

Downgrade (best effort): on PostgreSQL the conventional names go back to PostgreSQL's own default names, which is
what a database from before the convention held (0008's downgrade drops member_link_key_key by that name). On
SQLite the names stay: no earlier revision refers to a constraint by a name the rebuild gave.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04 06:00:00.000000

"""
from __future__ import annotations

from typing import Any, NamedTuple

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

# Frozen copy of mailer.extensions.NAMING_CONVENTION, so this migration never changes.
NAMING_CONVENTION = {
    'ix': 'ix_%(column_0_label)s',
    'uq': 'uq_%(table_name)s_%(column_0_name)s',
    'ck': 'ck_%(table_name)s_%(constraint_name)s',
    'fk': 'fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s',
    'pk': 'pk_%(table_name)s',
}
# Names the models give explicitly, which the convention leaves alone: (kind, table, columns) -> name.
EXPLICIT = {
    ('uq', 'delivery', ('announcement_id', 'member_id')): 'uq_delivery_announcement_member',
    ('ix', 'delivery', ('announcement_id', 'state', 'next_attempt_at', 'id')): 'ix_delivery_due',
    ('ix', 'outbox', ('state', 'next_attempt_at', 'id')): 'ix_outbox_due',
}


class Name(NamedTuple):
    """One constraint or index: the name it has (None if unnamed) and the name the convention gives it."""

    kind: str  # pk, fk, uq or ix
    table: str
    columns: tuple[str, ...]
    current: str | None
    wanted: str
    postgres_default: str  # what PostgreSQL calls it when it is created without a name
    unique: bool = False  # indexes only


def _wanted(kind: str, table: str, columns: tuple[str, ...], referred_table: str = '') -> str:
    explicit = EXPLICIT.get((kind, table, columns))
    if explicit is not None:
        return explicit
    tokens = {'table_name': table, 'column_0_name': columns[0], 'column_0_label': f'{table}_{columns[0]}',
              'referred_table_name': referred_table}
    return NAMING_CONVENTION[kind] % tokens


def _postgres_default(kind: str, table: str, columns: tuple[str, ...], wanted: str) -> str:
    if (kind, table, columns) in EXPLICIT or kind == 'ix':
        return wanted
    suffix = {'pk': 'pkey', 'fk': f'{columns[0]}_fkey', 'uq': f'{"_".join(columns)}_key'}[kind]
    return f'{table}_{suffix}'


def _names(bind: sa.engine.Connection) -> list[Name]:
    """Every primary key, foreign key, unique constraint and index of the application's tables."""
    inspector = sa.inspect(bind)
    names: list[Name] = []

    def add(kind: str, table: str, columns: tuple[str, ...], current: str | None, referred: str = '',
            unique: bool = False) -> None:
        wanted = _wanted(kind, table, columns, referred)
        names.append(Name(kind, table, columns, current, wanted, _postgres_default(kind, table, columns, wanted),
                          unique))

    for table in sorted(inspector.get_table_names()):
        if table == 'alembic_version':
            continue
        pk = inspector.get_pk_constraint(table)
        add('pk', table, tuple(pk['constrained_columns']), pk.get('name'))
        for fk in inspector.get_foreign_keys(table):
            add('fk', table, tuple(fk['constrained_columns']), fk.get('name'), referred=fk['referred_table'])
        for uq in inspector.get_unique_constraints(table):
            add('uq', table, tuple(uq['column_names']), uq.get('name'))
        constraint_names = {name.current for name in names if name.table == table}
        for ix in inspector.get_indexes(table):
            if ix['name'] in constraint_names or ix.get('duplicates_constraint'):
                continue  # PostgreSQL's index behind a unique constraint: renamed with the constraint
            columns = tuple(str(column) for column in ix['column_names'])
            add('ix', table, columns, ix['name'], unique=bool(ix['unique']))
    return names


def _quote(name: str) -> str:
    return str(op.get_bind().dialect.identifier_preparer.quote(name))


def _rename_on_postgres(renames: list[tuple[Name, str, str]]) -> None:
    for name, old, new in renames:
        if name.kind == 'ix':
            op.execute(f'ALTER INDEX {_quote(old)} RENAME TO {_quote(new)}')
        else:
            op.execute(f'ALTER TABLE {_quote(name.table)} RENAME CONSTRAINT {_quote(old)} TO {_quote(new)}')


def _sqlite_autoincrement(bind: sa.engine.Connection, table: str) -> bool:
    sql = bind.execute(sa.text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = :t"), {'t': table})
    return 'AUTOINCREMENT' in (sql.scalar() or '').upper()


def _sqlite_sequences(bind: sa.engine.Connection) -> dict[str, int]:
    if bind.execute(sa.text("SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_sequence'")).scalar() == 0:
        return {}
    return {str(row.name): int(row.seq) for row in bind.execute(sa.text('SELECT name, seq FROM sqlite_sequence'))}


def _rebuild_on_sqlite(names: list[Name]) -> None:
    bind = op.get_bind()
    autoincrement = {name.table for name in names if _sqlite_autoincrement(bind, name.table)}
    wrong = [name for name in names if name.current != name.wanted
             and not (name.kind == 'pk' and name.table in autoincrement)]  # an inline primary key has no name
    for name in wrong:
        if name.current is not None and name.kind == 'pk':
            raise RuntimeError(f'0012: primary key {name.current!r} of {name.table!r} is not {name.wanted!r}; '
                               'SQLite cannot rename it in place: rename it by hand, then upgrade again')
    for name in wrong:  # a misnamed index is dropped and made again, no rebuild needed
        if name.kind == 'ix' and name.current is not None:
            op.drop_index(name.current, table_name=name.table)
            op.create_index(name.wanted, name.table, list(name.columns), unique=name.unique)
    tables = sorted({name.table for name in wrong if name.kind != 'ix'})
    if not tables:
        return
    sequences = _sqlite_sequences(bind)
    inspector = sa.inspect(bind)
    # Rebuilding a table must not fire ON DELETE actions on the rows that point at it.
    with op.get_context().autocommit_block():
        op.execute('PRAGMA foreign_keys=OFF')
    for table in tables:
        kwargs: dict[str, Any] = {'sqlite_autoincrement': True} if table in autoincrement else {}
        foreign_keys = {tuple(fk['constrained_columns']): fk for fk in inspector.get_foreign_keys(table)}
        with op.batch_alter_table(table, recreate='always', naming_convention=NAMING_CONVENTION,
                                  table_kwargs=kwargs) as batch_op:
            for name in wrong:  # unnamed ones get their names from the convention; misnamed ones are remade
                if name.table != table or name.current is None or name.kind == 'ix':
                    continue
                if name.kind == 'uq':
                    batch_op.drop_constraint(name.current, type_='unique')
                    batch_op.create_unique_constraint(name.wanted, list(name.columns))
                else:
                    fk = foreign_keys[name.columns]
                    options = fk.get('options', {})
                    batch_op.drop_constraint(name.current, type_='foreignkey')
                    batch_op.create_foreign_key(name.wanted, fk['referred_table'], list(name.columns),
                                                fk['referred_columns'], ondelete=options.get('ondelete'),
                                                onupdate=options.get('onupdate'))
        if table in sequences:  # the rebuilt table's counter starts from its highest id: put the old one back
            bind.execute(sa.text('UPDATE sqlite_sequence SET seq = max(seq, :seq) WHERE name = :t'),
                         {'seq': sequences[table], 't': table})
            if bind.execute(sa.text('SELECT count(*) FROM sqlite_sequence WHERE name = :t'), {'t': table}).scalar() == 0:
                bind.execute(sa.text('INSERT INTO sqlite_sequence (name, seq) VALUES (:t, :seq)'),
                             {'seq': sequences[table], 't': table})
    with op.get_context().autocommit_block():
        op.execute('PRAGMA foreign_keys=ON')


def upgrade() -> None:
    bind = op.get_bind()
    names = _names(bind)
    if bind.dialect.name == 'sqlite':
        _rebuild_on_sqlite(names)
    else:
        _rename_on_postgres([(name, name.current, name.wanted) for name in names
                             if name.current is not None and name.current != name.wanted])


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == 'sqlite':
        return  # the names stay: see the docstring
    _rename_on_postgres([(name, name.wanted, name.postgres_default) for name in _names(bind)
                         if name.current == name.wanted and name.wanted != name.postgres_default])
