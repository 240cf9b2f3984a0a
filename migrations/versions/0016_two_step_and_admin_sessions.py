"""two-step login and server-side admin sessions (issue 19, items 3 and 5)

- admin gains totp_secret, totp_last_step (no code is accepted twice) and two_step_enabled_at;
- recovery_code: an admin's one-time recovery codes, hashed;
- admin_session: one row per log-in behind the session cookie (device, IP, last seen, ended);
- security_policy: one row (id 1) of owner choices, starting with "two-step login required for everyone" off.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-04 09:00:00.000000

"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('admin', schema=None) as batch_op:
        batch_op.add_column(sa.Column('totp_secret', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('totp_last_step', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('two_step_enabled_at', sa.DateTime(timezone=True), nullable=True))

    op.create_table(
        'recovery_code',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('admin_id', sa.Integer(), nullable=False),
        sa.Column('code_hash', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['admin_id'], ['admin.id'], name='fk_recovery_code_admin_id_admin', ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name='pk_recovery_code'),
    )
    op.create_index('ix_recovery_code_admin_id', 'recovery_code', ['admin_id'], unique=False)

    op.create_table(
        'admin_session',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('key', sa.String(length=64), nullable=False),
        sa.Column('admin_id', sa.Integer(), nullable=False),
        sa.Column('session_version', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('device', sa.String(length=100), nullable=False),
        sa.Column('ip_address', sa.String(length=45), nullable=True),
        sa.ForeignKeyConstraint(['admin_id'], ['admin.id'], name='fk_admin_session_admin_id_admin', ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name='pk_admin_session'),
        sa.UniqueConstraint('key', name='uq_admin_session_key'),
    )
    op.create_index('ix_admin_session_admin_id', 'admin_session', ['admin_id'], unique=False)

    policy = op.create_table(
        'security_policy',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('require_two_step', sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('id', name='pk_security_policy'),
    )
    op.bulk_insert(policy, [{'id': 1, 'require_two_step': False}])


def downgrade():
    op.drop_table('security_policy')
    op.drop_index('ix_admin_session_admin_id', table_name='admin_session')
    op.drop_table('admin_session')
    op.drop_index('ix_recovery_code_admin_id', table_name='recovery_code')
    op.drop_table('recovery_code')
    with op.batch_alter_table('admin', schema=None) as batch_op:
        batch_op.drop_column('two_step_enabled_at')
        batch_op.drop_column('totp_last_step')
        batch_op.drop_column('totp_secret')
