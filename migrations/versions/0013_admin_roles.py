"""admins have a role: owner, sender or writer (V4, issue 19)

Every admin made before roles existed could do everything, so each becomes an owner; nothing they could do is
taken away by the upgrade. Stored as a plain string (as the other enums are), portable between both databases.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04 08:45:00.000000

"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('admin', schema=None) as batch_op:
        batch_op.add_column(sa.Column('role', sa.String(length=20), nullable=False, server_default='owner'))


def downgrade():
    with op.batch_alter_table('admin', schema=None) as batch_op:
        batch_op.drop_column('role')
