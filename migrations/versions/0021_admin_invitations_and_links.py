"""admin invitations and emailed admin links: password resets, new addresses to confirm (V4, issue 19)

Each row backs one single-use link: the emailed token is signed with SECRET_KEY and names the row's random
link_key (never the address); the row says until when it works and whether it was used or withdrawn.

Admin ids are never reused on SQLite from now on (the table is rebuilt with AUTOINCREMENT, as 0011 did for
others): a login cookie names the admin's id and session version, so once admins can be removed from the web, a
new admin given a removed one's id could otherwise be logged in by the removed admin's old cookie. The two new
tables are AUTOINCREMENT too: a queued mail names its link's row id. PostgreSQL sequences never reuse ids.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-04 08:45:53.157899

"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision = '0021'
down_revision = '0020'
branch_labels = None
depends_on = None


def _rebuild_admin(autoincrement):
    if op.get_bind().dialect.name != 'sqlite':
        return
    # Rebuilding a table must not fire ON DELETE actions on the rows that point at it.
    with op.get_context().autocommit_block():
        op.execute('PRAGMA foreign_keys=OFF')
    kwargs = {'sqlite_autoincrement': True} if autoincrement else {}
    with op.batch_alter_table('admin', recreate='always', table_kwargs=kwargs):
        pass
    with op.get_context().autocommit_block():
        op.execute('PRAGMA foreign_keys=ON')


def upgrade():
    _rebuild_admin(autoincrement=True)
    op.create_table('admin_invitation',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('link_key', sa.String(length=64), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('role', sa.Enum('owner', 'sender', 'writer', name='adminrole', native_enum=False, create_constraint=False, length=20), nullable=False),
    sa.Column('invited_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('withdrawn_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['invited_by_id'], ['admin.id'], name=op.f('fk_admin_invitation_invited_by_id_admin'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_admin_invitation')),
    sa.UniqueConstraint('link_key', name=op.f('uq_admin_invitation_link_key')),
    sqlite_autoincrement=True,
    )
    with op.batch_alter_table('admin_invitation', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_admin_invitation_email'), ['email'], unique=False)

    op.create_table('admin_link',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('link_key', sa.String(length=64), nullable=False),
    sa.Column('admin_id', sa.Integer(), nullable=False),
    sa.Column('purpose', sa.Enum('password_reset', 'email_change', name='adminlinkpurpose', native_enum=False, create_constraint=False, length=20), nullable=False),
    sa.Column('new_email', sa.String(length=320), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['admin_id'], ['admin.id'], name=op.f('fk_admin_link_admin_id_admin'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_admin_link')),
    sa.UniqueConstraint('link_key', name=op.f('uq_admin_link_link_key')),
    sqlite_autoincrement=True,
    )
    with op.batch_alter_table('admin_link', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_admin_link_admin_id'), ['admin_id'], unique=False)



def downgrade():
    with op.batch_alter_table('admin_link', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_admin_link_admin_id'))

    op.drop_table('admin_link')
    with op.batch_alter_table('admin_invitation', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_admin_invitation_email'))

    op.drop_table('admin_invitation')
    _rebuild_admin(autoincrement=False)
