"""announcements remember the square brackets an admin confirmed are meant (V2, issue 18)

The check page lists template gaps such as `[your name]`; brackets that belong in the text can be
confirmed there once. Existing announcements have confirmed none.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-04 09:05:00.000000

"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0022'
down_revision = '0021'
branch_labels = None
depends_on = None


# Plain ALTER TABLE on both databases (SQLite 3.35+ drops columns too): a batch copy of the table would lose
# SQLite's AUTOINCREMENT on announcement ids (migration 0011).
def upgrade():
    op.add_column('announcement', sa.Column('meant_brackets', sa.Text(), nullable=False, server_default=''))


def downgrade():
    op.drop_column('announcement', 'meant_brackets')
