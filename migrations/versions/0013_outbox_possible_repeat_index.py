"""a partial index for the sent-mail report's possible repeats

Revision ID: 0013_possible_repeat_index
Revises: 0008_background_jobs
Create Date: 2026-12-01 22:05:00
"""

from alembic import op
import sqlalchemy as sa


revision = "0013_possible_repeat_index"
down_revision = "0008_background_jobs"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_outbox_possible_repeat", "outbox_messages", ["mailing_id"],
        postgresql_where=sa.text("possible_repeat"),
        sqlite_where=sa.text("possible_repeat = 1"),
    )


def downgrade() -> None:
    op.drop_index("ix_outbox_possible_repeat", table_name="outbox_messages")
