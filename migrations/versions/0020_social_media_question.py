"""each social-media answer names the question it answered (issue 18.9)

The join form asked "Do you follow the forum on social media?"; it now asks "Do you use social media, such as
Facebook, Instagram or WhatsApp groups?". Answers given before this upgrade keep the old wording
('follows_forum'); new ones name the new wording ('uses_social_media'), set by the models. The server default
stays 'follows_forum': a row written without naming the wording (by the code of before this upgrade, still
running during a deploy, or by hand) was asked the old question.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-04 09:00:00.000000

"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None

QUESTION = sa.Enum(
    'follows_forum', 'uses_social_media', name='socialmediaquestion', native_enum=False, create_constraint=False,
    length=20,
)


def upgrade():
    for table in ('member', 'join_request'):
        column = sa.Column('social_media_question', QUESTION, nullable=False, server_default='follows_forum')
        op.add_column(table, column)  # not batch: rebuilding `member` on SQLite would cascade to member_group


def downgrade():
    for table in ('join_request', 'member'):
        op.drop_column(table, 'social_media_question')  # SQLite 3.35+ drops a column in place
