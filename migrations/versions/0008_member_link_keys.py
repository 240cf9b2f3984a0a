"""member link keys, and member ids never reused on SQLite (issue 15)

Links named a member by id; SQLite gave a deleted member's id to the next person, so an erased
member's old link opened the newcomer's record. Links now carry a random per-member link key, and
the member table is rebuilt with AUTOINCREMENT so no id is ever handed out twice.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 03:20:00.000000

"""
import secrets

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade():
    bind = op.get_bind()
    with op.batch_alter_table('member', schema=None) as batch_op:
        batch_op.add_column(sa.Column('link_key', sa.String(length=64), nullable=True))
    member = sa.table('member', sa.column('id', sa.Integer()), sa.column('link_key', sa.String()))
    ids = [row.id for row in bind.execute(sa.select(member.c.id))]
    for member_id in ids:
        bind.execute(member.update().where(member.c.id == member_id).values(link_key=secrets.token_urlsafe(16)))
    if bind.dialect.name == 'sqlite':
        # Rebuilding the table must not fire ON DELETE actions on consent, groups and outbox rows.
        with op.get_context().autocommit_block():
            op.execute('PRAGMA foreign_keys=OFF')
        with op.batch_alter_table('member', recreate='always', table_kwargs={'sqlite_autoincrement': True}) as batch_op:
            batch_op.alter_column('link_key', existing_type=sa.String(length=64), nullable=False)
            batch_op.create_unique_constraint('uq_member_link_key', ['link_key'])
        with op.get_context().autocommit_block():
            op.execute('PRAGMA foreign_keys=ON')
    else:
        op.alter_column('member', 'link_key', existing_type=sa.String(length=64), nullable=False)
        op.create_unique_constraint('member_link_key_key', 'member', ['link_key'])


def downgrade():
    bind = op.get_bind()
    if bind.dialect.name == 'sqlite':
        with op.get_context().autocommit_block():
            op.execute('PRAGMA foreign_keys=OFF')
        with op.batch_alter_table('member', recreate='always') as batch_op:
            batch_op.drop_constraint('uq_member_link_key', type_='unique')
            batch_op.drop_column('link_key')
        with op.get_context().autocommit_block():
            op.execute('PRAGMA foreign_keys=ON')
    else:
        op.drop_constraint('member_link_key_key', 'member', type_='unique')
        op.drop_column('member', 'link_key')
