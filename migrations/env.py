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


def run_migrations() -> None:
    with app.app_context(), db.engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=metadata,
            render_as_batch=True,
            compare_type=True,
            render_item=render_item,
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


run_migrations()
