"""mail throttle state

Revision ID: 0003_mail_throttle
Revises: 0002_people_mailings
Create Date: 2026-11-23 23:05:45.864746
"""

from alembic import op
import sqlalchemy as sa


revision = '0003_mail_throttle'
down_revision = '0002_people_mailings'
branch_labels = None
depends_on = None


def upgrade() -> None:
    
    op.create_table('mail_throttle',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('paused_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('rate_per_second', sa.Float(), nullable=True),
    sa.Column('throttles', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_mail_throttle'))
    )



def downgrade() -> None:
    
    op.drop_table('mail_throttle')

