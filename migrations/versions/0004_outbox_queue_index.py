"""outbox queue index

Revision ID: 0004_outbox_queue_index
Revises: 0003_mail_throttle
Create Date: 2026-11-23 23:15:43.974453
"""

from alembic import op
import sqlalchemy as sa


revision = '0004_outbox_queue_index'
down_revision = '0003_mail_throttle'
branch_labels = None
depends_on = None


def upgrade() -> None:
    
    with op.batch_alter_table('outbox_messages', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_outbox_due'))
        batch_op.create_index('ix_outbox_queue', ['status', 'priority', 'id'], unique=False)




def downgrade() -> None:
    
    with op.batch_alter_table('outbox_messages', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_queue')
        batch_op.create_index(batch_op.f('ix_outbox_due'), ['status', 'priority', 'next_attempt_at'], unique=False)


