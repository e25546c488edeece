"""erased addresses, remembered only as a keyed hash

Revision ID: 0010_erasure
Revises: 0012_encrypted_fields_door
Create Date: 2026-12-01 20:10:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0010_erasure'
down_revision = '0012_encrypted_fields_door'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('erased_addresses',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('group_id', sa.Integer(), nullable=False),
    sa.Column('address_hash', sa.String(length=64), nullable=False),
    sa.Column('erased_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['group_id'], ['groups.id'], name=op.f('fk_erased_addresses_group_id_groups'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_erased_addresses')),
    sa.UniqueConstraint('group_id', 'address_hash', name=op.f('uq_erased_addresses_group_id_address_hash'))
    )


def downgrade() -> None:
    op.drop_table('erased_addresses')
