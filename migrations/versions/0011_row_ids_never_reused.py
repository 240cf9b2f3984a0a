"""announcement, delivery and outbox ids never reused on SQLite (issue 15)

VERP bounce addresses sign a delivery or outbox id, and a bounce's dedup key names that id; the
public archive links an announcement by id. Without AUTOINCREMENT SQLite hands a deleted row's id
(the highest) to the next row, so a late bounce or complaint for a purged message could count
against, or unsubscribe, whoever got the id next, and an old archive link could open another
announcement. The tables are rebuilt with AUTOINCREMENT, as the member table was in 0008.
PostgreSQL sequences never hand an id out twice: nothing to do there.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04 04:30:00.000000

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

TABLES = ('announcement', 'delivery', 'outbox')


def _rebuild(autoincrement):
    if op.get_bind().dialect.name != 'sqlite':
        return
    # Rebuilding a table must not fire ON DELETE actions on the rows that point at it.
    with op.get_context().autocommit_block():
        op.execute('PRAGMA foreign_keys=OFF')
    for table in TABLES:
        kwargs = {'sqlite_autoincrement': True} if autoincrement else {}
        with op.batch_alter_table(table, recreate='always', table_kwargs=kwargs):
            pass
    with op.get_context().autocommit_block():
        op.execute('PRAGMA foreign_keys=ON')


def upgrade():
    _rebuild(autoincrement=True)


def downgrade():
    _rebuild(autoincrement=False)
