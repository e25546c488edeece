"""actions and sign-ups

Revision ID: 0005_actions_signups
Revises: 0004_outbox_queue_index
Create Date: 2026-11-23 23:33:15.737621
"""

from alembic import op
import sqlalchemy as sa


revision = '0005_actions_signups'
down_revision = '0004_outbox_queue_index'
branch_labels = None
depends_on = None


def upgrade() -> None:
    
    op.create_table('actions',
    sa.Column('group_id', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=160), nullable=False),
    sa.Column('kind', sa.String(length=30), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('starts_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ends_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('is_online', sa.Boolean(), nullable=False),
    sa.Column('place_name', sa.String(length=160), nullable=False),
    sa.Column('address', sa.String(length=500), nullable=False),
    sa.Column('online_url', sa.String(length=500), nullable=False),
    sa.Column('area', sa.String(length=120), nullable=False),
    sa.Column('place_public', sa.Boolean(), nullable=False),
    sa.Column('accessibility', sa.Text(), nullable=False),
    sa.Column('capacity', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('published_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('cancelled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('reminder_hours', sa.Integer(), nullable=False),
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['group_id'], ['groups.id'], name=op.f('fk_actions_group_id_groups'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_actions'))
    )
    with op.batch_alter_table('actions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_actions_area'), ['area'], unique=False)
        batch_op.create_index(batch_op.f('ix_actions_group_id'), ['group_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_actions_starts_at'), ['starts_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_actions_status'), ['status'], unique=False)

    op.create_table('action_signups',
    sa.Column('action_id', sa.Integer(), nullable=False),
    sa.Column('group_id', sa.Integer(), nullable=False),
    sa.Column('supporter_id', sa.Integer(), nullable=True),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('phone', sa.String(length=40), nullable=False),
    sa.Column('access_needs', sa.String(length=1000), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('walk_in', sa.Boolean(), nullable=False),
    sa.Column('checked_in_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('reminded_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('cancelled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['action_id'], ['actions.id'], name=op.f('fk_action_signups_action_id_actions'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['group_id'], ['groups.id'], name=op.f('fk_action_signups_group_id_groups'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['supporter_id'], ['supporters.id'], name=op.f('fk_action_signups_supporter_id_supporters'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_action_signups')),
    sa.UniqueConstraint('action_id', 'email', name=op.f('uq_action_signups_action_id_email'))
    )
    with op.batch_alter_table('action_signups', schema=None) as batch_op:
        batch_op.create_index('ix_action_signups_queue', ['action_id', 'status', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_action_signups_supporter_id'), ['supporter_id'], unique=False)

    with op.batch_alter_table('outbox_messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('calendar', sa.Text(), nullable=True))




def downgrade() -> None:
    
    with op.batch_alter_table('outbox_messages', schema=None) as batch_op:
        batch_op.drop_column('calendar')

    with op.batch_alter_table('action_signups', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_action_signups_supporter_id'))
        batch_op.drop_index('ix_action_signups_queue')

    op.drop_table('action_signups')
    with op.batch_alter_table('actions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_actions_status'))
        batch_op.drop_index(batch_op.f('ix_actions_starts_at'))
        batch_op.drop_index(batch_op.f('ix_actions_group_id'))
        batch_op.drop_index(batch_op.f('ix_actions_area'))

    op.drop_table('actions')

