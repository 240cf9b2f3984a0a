"""groups can be reordered and retired; the forum's details are kept in a one-row table (V6, R1, issue 20)

The first migration's groups stay as the starting set with their ids and positions; none is retired.
forum_details starts empty: every value then comes from the configuration until an owner saves the form.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-04 09:00:00.000000

"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('group', schema=None) as batch_op:
        batch_op.add_column(sa.Column('retired_at', sa.DateTime(timezone=True), nullable=True))
    op.create_table('forum_details',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('forum_name', sa.String(length=100), nullable=True),
    sa.Column('contact_address', sa.String(length=320), nullable=True),
    sa.Column('privacy_notice_url', sa.String(length=500), nullable=True),
    sa.Column('footer_line', sa.String(length=200), nullable=True),
    sa.Column('undo_seconds', sa.Integer(), nullable=True),
    sa.Column('joining_line_1', sa.String(length=80), nullable=True),
    sa.Column('joining_line_2', sa.String(length=80), nullable=True),
    sa.Column('joining_line_3', sa.String(length=80), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_forum_details'))
    )


def downgrade():
    op.drop_table('forum_details')
    sqlite = op.get_bind().dialect.name == 'sqlite'
    if sqlite:
        # Rebuilding the table must not fire ON DELETE actions on members' and announcements' groups.
        with op.get_context().autocommit_block():
            op.execute('PRAGMA foreign_keys=OFF')
    with op.batch_alter_table('group', schema=None) as batch_op:
        batch_op.drop_column('retired_at')
    if sqlite:
        with op.get_context().autocommit_block():
            op.execute('PRAGMA foreign_keys=ON')
