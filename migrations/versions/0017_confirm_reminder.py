"""one reminder to confirm: when it was queued, so it is never sent twice (issue 20.7)

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-04 09:00:00.000000

"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column('member', sa.Column('confirm_reminder_sent_at', sa.DateTime(timezone=True), nullable=True))


def downgrade():
    bind = op.get_bind()
    if bind.dialect.name == 'sqlite':
        # The table is rebuilt: with foreign keys on, dropping it would take members' groups and consent with it.
        with op.get_context().autocommit_block():
            op.execute('PRAGMA foreign_keys=OFF')
        with op.batch_alter_table('member', recreate='always', table_kwargs={'sqlite_autoincrement': True}) as batch_op:
            batch_op.drop_column('confirm_reminder_sent_at')
        with op.get_context().autocommit_block():
            op.execute('PRAGMA foreign_keys=ON')
    else:
        op.drop_column('member', 'confirm_reminder_sent_at')
