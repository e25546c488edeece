"""outbox claims, heartbeats and lanes

Revision ID: 0006_outbox_claims
Revises: 0009_mailing_indexes
Create Date: 2026-12-01 20:30:00
"""

from alembic import op
import sqlalchemy as sa


revision = "0006_outbox_claims"
down_revision = "0009_mailing_indexes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox_messages", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("lane", sa.String(length=60), server_default="service", nullable=False)
        )
        batch_op.add_column(sa.Column("claim_token", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("claimed_by", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("possible_repeat", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.create_index(
            batch_op.f("ix_outbox_messages_claim_token"), ["claim_token"], unique=False
        )
    # Campaign mail already queued travels in its group's lane.
    op.execute(
        "UPDATE outbox_messages SET lane = 'group:' || group_id "
        "WHERE category = 'marketing' AND group_id IS NOT NULL"
    )
    # The old single throttle row becomes per-lane state; it only held a pause.
    op.execute("DELETE FROM mail_throttle")
    with op.batch_alter_table("mail_throttle", schema=None) as batch_op:
        batch_op.add_column(sa.Column("lane", sa.String(length=60), nullable=False))
        batch_op.add_column(sa.Column("last_error", sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column("last_error_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("error_kind", sa.String(length=20), nullable=True))
        batch_op.create_unique_constraint(batch_op.f("uq_mail_throttle_lane"), ["lane"])


def downgrade() -> None:
    op.execute("DELETE FROM mail_throttle")
    with op.batch_alter_table("mail_throttle", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_mail_throttle_lane"), type_="unique")
        batch_op.drop_column("error_kind")
        batch_op.drop_column("last_error_at")
        batch_op.drop_column("last_error")
        batch_op.drop_column("lane")
    with op.batch_alter_table("outbox_messages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outbox_messages_claim_token"))
        batch_op.drop_column("possible_repeat")
        batch_op.drop_column("heartbeat_at")
        batch_op.drop_column("claimed_by")
        batch_op.drop_column("lane")
        batch_op.drop_column("claim_token")
