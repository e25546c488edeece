"""bounce events: each delivery problem reported about a group's message

Revision ID: 0007_bounce_events
Revises: 0010_erasure
Create Date: 2026-12-01 20:20:00.000000
"""

from alembic import op
import sqlalchemy as sa


revision = '0007_bounce_events'
down_revision = '0010_erasure'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('bounce_events',
    sa.Column('group_id', sa.Integer(), nullable=False),
    sa.Column('supporter_id', sa.Integer(), nullable=True),
    sa.Column('address', sa.String(length=320), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('reason', sa.String(length=300), nullable=False),
    sa.Column('message_id', sa.String(length=255), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['group_id'], ['groups.id'], name=op.f('fk_bounce_events_group_id_groups'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['supporter_id'], ['supporters.id'], name=op.f('fk_bounce_events_supporter_id_supporters'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_bounce_events'))
    )
    with op.batch_alter_table('bounce_events', schema=None) as batch_op:
        batch_op.create_index('ix_bounce_events_group_address', ['group_id', 'address'], unique=False)
        batch_op.create_index(batch_op.f('ix_bounce_events_supporter_id'), ['supporter_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('bounce_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_bounce_events_supporter_id'))
        batch_op.drop_index('ix_bounce_events_group_address')
    op.drop_table('bounce_events')
