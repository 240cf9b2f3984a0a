"""queue indexes end with id, the order claims take rows in (engine/claims.py)

A claim is then a range scan that stops after one batch, instead of reading and sorting every
row still to send.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23 23:30:00.000000

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

INDEXES = {
    'delivery': ('ix_delivery_due', ['announcement_id', 'state', 'next_attempt_at']),
    'outbox': ('ix_outbox_due', ['state', 'next_attempt_at']),
}


def upgrade():
    for table, (name, columns) in INDEXES.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(name)
            batch_op.create_index(name, [*columns, 'id'], unique=False)


def downgrade():
    for table, (name, columns) in INDEXES.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(name)
            batch_op.create_index(name, columns, unique=False)
