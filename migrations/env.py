"""Alembic environment: the engine and metadata come from the Campaign app."""

from __future__ import annotations

from alembic import context

from campaign.core.models import UTCDateTime
from campaign.extensions import db
from campaign.models import metadata

config = context.config
app = config.attributes.get("flask_app")
if app is None:  # run by the bare `alembic` command
    from campaign import create_app

    app = create_app()


def render_item(type_: str, obj: object, autogen_context: object) -> str | bool:
    """Write our UTC type as a plain timezone-aware DateTime in revision files."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def _sqlite_foreign_keys(connection: object, on: bool) -> None:
    """Switch SQLite's foreign keys outside any transaction (a PRAGMA inside one is ignored).

    A batch migration rebuilds a table by copying it and dropping the old one; with
    foreign keys on, that DROP would cascade to every row that refers to the table
    (consent records, sign-ups...). So they are off while migrations run and checked after.
    """
    raw = connection.connection.dbapi_connection  # type: ignore[attr-defined]
    raw.execute(f"PRAGMA foreign_keys={'ON' if on else 'OFF'}")


def run_migrations() -> None:
    with app.app_context(), db.engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            _sqlite_foreign_keys(connection, on=False)
        try:
            context.configure(
                connection=connection,
                target_metadata=metadata,
                render_as_batch=True,
                compare_type=True,
                render_item=render_item,
            )
            with context.begin_transaction():
                context.run_migrations()
                if sqlite:
                    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
                    if broken:
                        raise RuntimeError(f"migration broke foreign keys: {broken[:5]}")
            connection.commit()
        finally:
            if sqlite:
                if connection.in_transaction():
                    connection.rollback()
                _sqlite_foreign_keys(connection, on=True)


run_migrations()
