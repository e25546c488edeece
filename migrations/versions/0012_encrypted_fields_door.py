"""phone numbers and access needs sealed at rest; volunteers at the door

Revision ID: 0012_encrypted_fields_door
Revises: 0005_actions_signups
Create Date: 2026-12-01 20:15:00

The columns widen to text (a ciphertext is longer than the value), then every stored
plaintext value is sealed with the app's ENCRYPTION_KEYS (core.crypto: AES-GCM, the
table, column and row id as associated data). The migration runs inside the app
(core/migrations.py and env.py), so it reads the same keys as the app. Downgrading
opens the values again before the columns narrow.

``actions.volunteers_check_in``: the organiser's choice that group volunteers may run
door check-in for an action (off for every existing action).
"""

from alembic import op
import sqlalchemy as sa

from campaign.core.crypto import decrypt_field, encrypt_field


revision = '0012_encrypted_fields_door'
down_revision = '0005_actions_signups'
branch_labels = None
depends_on = None

# (table, column, plaintext length before this revision)
SEALED = (
    ("supporters", "phone", 40),
    ("action_signups", "phone", 40),
    ("action_signups", "access_needs", 1000),
)
BATCH = 500


def _convert(table_name: str, column_name: str, change) -> None:
    """Rewrite every non-empty value of one column through ``change(value, row_id)``."""
    connection = op.get_bind()
    table = sa.table(table_name, sa.column("id", sa.Integer), sa.column(column_name, sa.Text))
    column = table.c[column_name]
    last_id = 0
    while True:
        rows = connection.execute(
            sa.select(table.c.id, column)
            .where(table.c.id > last_id, column != "")
            .order_by(table.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            return
        last_id = rows[-1][0]
        connection.execute(
            sa.update(table)
            .where(table.c.id == sa.bindparam("row_id"))
            .values({column_name: sa.bindparam("value")}),
            [{"row_id": row_id, "value": change(value, row_id)} for row_id, value in rows],
        )


def upgrade() -> None:
    with op.batch_alter_table('actions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('volunteers_check_in', sa.Boolean(),
                                      server_default=sa.false(), nullable=False))
    for table_name, column_name, length in SEALED:
        with op.batch_alter_table(table_name, schema=None) as batch_op:
            batch_op.alter_column(column_name, existing_type=sa.String(length=length),
                                  type_=sa.Text(), existing_nullable=False)

        def seal(value, row_id, table_name=table_name, column_name=column_name):
            return encrypt_field(value, table=table_name, column=column_name, row_id=row_id)

        _convert(table_name, column_name, seal)


def downgrade() -> None:
    for table_name, column_name, length in SEALED:

        def unseal(value, row_id, table_name=table_name, column_name=column_name):
            return decrypt_field(value, table=table_name, column=column_name, row_id=row_id)

        _convert(table_name, column_name, unseal)
        with op.batch_alter_table(table_name, schema=None) as batch_op:
            batch_op.alter_column(column_name, existing_type=sa.Text(),
                                  type_=sa.String(length=length), existing_nullable=False)
    with op.batch_alter_table('actions', schema=None) as batch_op:
        batch_op.drop_column('volunteers_check_in')
