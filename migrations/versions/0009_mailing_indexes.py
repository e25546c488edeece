"""indexes for big lists: a mailing's report, the supporter search and counts

Revision ID: 0009_mailing_indexes
Revises: 0011_sessions_recovery
"""

from alembic import op
import sqlalchemy as sa


revision = '0009_mailing_indexes'
down_revision = '0011_sessions_recovery'
branch_labels = None
depends_on = None

SEARCH_KEYS = {
    "first_name": "lower(first_name)",
    "last_name": "lower(last_name)",
    "email": "lower(email)",
    "postcode": "lower(replace(postcode, ' ', ''))",
}


def upgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    op.create_index('ix_outbox_mailing_status', 'outbox_messages',
                    ['mailing_id', 'group_id', 'status', 'id'], unique=False)
    op.create_index('ix_outbox_supporter_mailing', 'outbox_messages',
                    ['supporter_id', 'mailing_id', 'group_id'], unique=False)
    op.create_index('ix_consent_group_action_time', 'consent_records',
                    ['group_id', 'action', 'created_at'], unique=False)
    op.create_index('ix_supporters_group_counts', 'supporters',
                    ['group_id', 'erased_at', 'updates_status'], unique=False)
    for name, key in SEARCH_KEYS.items():
        ops = " text_pattern_ops" if postgresql else ""
        op.create_index(f'ix_supporters_search_{name}', 'supporters',
                        ['group_id', sa.text(key + ops), 'erased_at'], unique=False)


def downgrade() -> None:
    for name in reversed(SEARCH_KEYS):
        op.drop_index(f'ix_supporters_search_{name}', table_name='supporters')
    op.drop_index('ix_supporters_group_counts', table_name='supporters')
    op.drop_index('ix_consent_group_action_time', table_name='consent_records')
    op.drop_index('ix_outbox_supporter_mailing', table_name='outbox_messages')
    op.drop_index('ix_outbox_mailing_status', table_name='outbox_messages')
