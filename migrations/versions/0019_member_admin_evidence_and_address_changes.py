"""consent evidence an admin records, and address changes waiting to be confirmed (V7, issue 20)

consent_event gains admin_id (who recorded it), agreed_on (the day the person agreed by phone, on paper or in
person) and note. address_change holds a new address until it is confirmed at that address.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-04 09:00:00.000000

"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('consent_event', schema=None) as batch_op:
        batch_op.add_column(sa.Column('admin_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('agreed_on', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('note', sa.String(length=500), nullable=True))
        batch_op.create_foreign_key(
            'fk_consent_event_admin_id_admin', 'admin', ['admin_id'], ['id'], ondelete='SET NULL'
        )
    op.create_table(
        'address_change',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('key', sa.String(length=64), nullable=False),
        sa.Column('member_id', sa.Integer(), nullable=False),
        sa.Column('new_email', sa.String(length=320), nullable=False),
        sa.Column('new_email_key', sa.String(length=320), nullable=False),
        sa.Column('admin_id', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('confirmed_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ['admin_id'], ['admin.id'], name='fk_address_change_admin_id_admin', ondelete='SET NULL'
        ),
        sa.ForeignKeyConstraint(
            ['member_id'], ['member.id'], name='fk_address_change_member_id_member', ondelete='CASCADE'
        ),
        sa.PrimaryKeyConstraint('id', name='pk_address_change'),
        sa.UniqueConstraint('key', name='uq_address_change_key'),
    )
    with op.batch_alter_table('address_change', schema=None) as batch_op:
        batch_op.create_index('ix_address_change_member_id', ['member_id'], unique=False)


def downgrade():
    with op.batch_alter_table('address_change', schema=None) as batch_op:
        batch_op.drop_index('ix_address_change_member_id')
    op.drop_table('address_change')
    with op.batch_alter_table('consent_event', schema=None) as batch_op:
        batch_op.drop_constraint('fk_consent_event_admin_id_admin', type_='foreignkey')
        batch_op.drop_column('note')
        batch_op.drop_column('agreed_on')
        batch_op.drop_column('admin_id')
