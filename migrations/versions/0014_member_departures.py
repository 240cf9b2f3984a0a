"""member departures: a row (and on PostgreSQL a NOTIFY) each time a member stops being one (J4, issue 17)

A send in progress checks, just before it writes a message to the relay, whether that member left since the
batch was read. The check must be cheap (it runs once a message) and must not depend on which code path ended
the membership (unsubscribe link, one-click, an admin, a bounce, erasure), so database triggers write it, in the
same transaction: an UPDATE of member.status away from 'member', or a DELETE of a member row. The sender reads
new rows by id (SQLite, in-process: microseconds) or listens for the NOTIFY (PostgreSQL: no round trip).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04 09:10:00.000000

"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None

CHANNEL = 'mailer_member_left'  # mailer/engine/departures.py listens on it

SQLITE_TRIGGERS = [
    """CREATE TRIGGER member_left_update AFTER UPDATE OF status ON member
       WHEN OLD.status = 'member' AND NEW.status <> 'member'
       BEGIN INSERT INTO member_departure (member_id) VALUES (OLD.id); END""",
    """CREATE TRIGGER member_left_delete AFTER DELETE ON member
       WHEN OLD.status = 'member'
       BEGIN INSERT INTO member_departure (member_id) VALUES (OLD.id); END""",
]

POSTGRES_TRIGGERS = [
    f"""CREATE FUNCTION mailer_member_left() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE departure bigint;
        BEGIN
            INSERT INTO member_departure (member_id) VALUES (OLD.id) RETURNING id INTO departure;
            PERFORM pg_notify('{CHANNEL}', departure::text || ':' || OLD.id::text);
            RETURN NULL;
        END $$""",
    """CREATE TRIGGER member_left_update AFTER UPDATE OF status ON member FOR EACH ROW
       WHEN (OLD.status = 'member' AND NEW.status <> 'member') EXECUTE FUNCTION mailer_member_left()""",
    """CREATE TRIGGER member_left_delete AFTER DELETE ON member FOR EACH ROW
       WHEN (OLD.status = 'member') EXECUTE FUNCTION mailer_member_left()""",
]


def upgrade():
    op.create_table(
        'member_departure',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('member_id', sa.Integer(), nullable=False),
        sa.Column('left_at', sa.DateTime(timezone=True), server_default=sa.text('CURRENT_TIMESTAMP'), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_member_departure')),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table('member_departure', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_member_departure_left_at'), ['left_at'], unique=False)
    statements = POSTGRES_TRIGGERS if op.get_bind().dialect.name == 'postgresql' else SQLITE_TRIGGERS
    for statement in statements:
        op.execute(statement)


def downgrade():
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('DROP TRIGGER IF EXISTS member_left_update ON member')
        op.execute('DROP TRIGGER IF EXISTS member_left_delete ON member')
        op.execute('DROP FUNCTION IF EXISTS mailer_member_left()')
    else:
        op.execute('DROP TRIGGER IF EXISTS member_left_update')
        op.execute('DROP TRIGGER IF EXISTS member_left_delete')
    with op.batch_alter_table('member_departure', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_member_departure_left_at'))
    op.drop_table('member_departure')
