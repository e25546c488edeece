"""Migrations upgrade from empty, match the models exactly, and downgrade to nothing.

Runs against a throwaway SQLite file, and against a throwaway PostgreSQL database when
TEST_DATABASE_URL points at a PostgreSQL server.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from campaign import create_app
from campaign.core import migrations
from campaign.extensions import db
from campaign.models import metadata
from tests.conftest import throwaway_database


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request, tmp_path) -> Iterator[str]:
    with throwaway_database(request.param, tmp_path) as url:
        yield url


def test_upgrade_from_empty_matches_models_and_downgrades_to_nothing(empty_database, tmp_path):
    app = create_app("testing", {"SQLALCHEMY_DATABASE_URI": empty_database,
                                 "MAIL_FILE_DIR": str(tmp_path / "mail")})  # fmt: skip
    with app.app_context():
        migrations.upgrade("head")
        tables = set(sa.inspect(db.engine).get_table_names())
        assert set(metadata.tables) <= tables
        assert migrations.drift() == []

        migrations.downgrade("base")
        remaining = set(sa.inspect(db.engine).get_table_names()) - {"alembic_version"}
        assert remaining == set()

        # And back up again, as an operator restoring a backup would.
        migrations.upgrade("head")
        assert migrations.drift() == []
        db.engine.dispose()


def test_drift_is_detected(tmp_path):
    """The drift check is not vacuous: a column the migrations lack is reported."""
    app = create_app("testing", {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'd.db'}",
                                 "MAIL_FILE_DIR": str(tmp_path / "mail")})  # fmt: skip
    with app.app_context():
        migrations.upgrade("head")
        with db.engine.begin() as connection:
            connection.exec_driver_sql("ALTER TABLE users ADD COLUMN stray INTEGER")
        differences = migrations.drift()
        assert any("stray" in repr(d) for d in differences)
        db.engine.dispose()
