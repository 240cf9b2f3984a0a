"""each social-media answer names the question it answered (issue 18.9)

The join form asked "Do you follow the forum on social media?"; it now asks "Do you use social media, such as
Facebook, Instagram or WhatsApp groups?". Answers given before this upgrade keep the old wording
('follows_forum'); new ones name the new wording ('uses_social_media'), set by the models. The server default
is only there to fill the existing rows; PostgreSQL drops it again. SQLite keeps it: dropping a default there
rebuilds the table, and rebuilding `member` would cascade-delete its group choices (alembic does not compare
server defaults, so `db check` stays clean).

Revision ID: 0015
Revises: 0013
Create Date: 2026-12-04 09:00:00.000000

"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0015'
down_revision = '0013'
branch_labels = None
depends_on = None

QUESTION = sa.Enum(
    'follows_forum', 'uses_social_media', name='socialmediaquestion', native_enum=False, create_constraint=False,
    length=20,
)


def upgrade():
    sqlite = op.get_bind().dialect.name == 'sqlite'
    for table in ('member', 'join_request'):
        column = sa.Column('social_media_question', QUESTION, nullable=False, server_default='follows_forum')
        op.add_column(table, column)
        if not sqlite:
            op.alter_column(table, 'social_media_question', server_default=None)


def downgrade():
    for table in ('join_request', 'member'):
        op.drop_column(table, 'social_media_question')  # SQLite 3.35+ drops a column in place
