"""`flask backup` then `flask restore`, as an operator runs them (real subprocesses), on
SQLite and on PostgreSQL: the same rows come back, uploads included, and a database that
is not empty is never overwritten without --force."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.conftest import throwaway_database

ROOT = Path(__file__).resolve().parents[2]
FLASK = str(Path(sys.executable).with_name("flask"))


def flask(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [FLASK, "--app", "campaign", *args], env=env, cwd=cwd,
        capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip


def site_env(database_url: str, instance: Path) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("CAMPAIGN_", "DATABASE_URL", "TEST_", "CELERY_"))
    }
    return env | {
        "CAMPAIGN_ENV": "development",
        "CAMPAIGN_INSTANCE_PATH": str(instance),
        "DATABASE_URL": database_url,
        "SECRET_KEY": "b" * 48,
        "ENCRYPTION_KEYS": "k1:" + "A" * 43,
        "PYTHONPATH": str(ROOT),
    }


def table_rows(url: str) -> dict[str, list[tuple]]:
    engine = sa.create_engine(url)
    try:
        metadata = sa.MetaData()
        metadata.reflect(engine)
        with engine.connect() as connection:
            return {
                name: sorted(connection.execute(sa.select(table)).all(), key=lambda row: repr(row))
                for name, table in metadata.tables.items()
            }
    finally:
        engine.dispose()


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_backup_then_restore_gives_the_same_rows_and_uploads(kind, tmp_path):
    with (
        throwaway_database(kind, tmp_path / "a") as source_url,
        throwaway_database(kind, tmp_path / "b") as target_url,
    ):
        (tmp_path / "a").mkdir(exist_ok=True)
        (tmp_path / "b").mkdir(exist_ok=True)
        source = site_env(source_url, tmp_path / "a" / "instance")
        for step in (("db", "upgrade"), ("demo",)):
            result = flask(source, tmp_path, *step)
            assert result.returncode == 0, result.stderr
        upload = tmp_path / "a" / "instance" / "uploads" / "motions" / "model-motion.odt"
        upload.parent.mkdir(parents=True)
        upload.write_bytes(b"not really a document \x00\x01")

        archive = tmp_path / "site.tar.gz"
        made = flask(source, tmp_path, "backup", str(archive))
        assert made.returncode == 0, made.stderr
        assert "1 uploaded file(s)" in made.stdout
        assert archive.stat().st_mode & 0o077 == 0

        target = site_env(target_url, tmp_path / "b" / "instance")
        restored = flask(target, tmp_path, "restore", str(archive))
        assert restored.returncode == 0, restored.stderr
        before, after = table_rows(source_url), table_rows(target_url)
        assert after == before
        assert sum(len(rows) for rows in after.values()) > 10  # the demo data came back
        copy = tmp_path / "b" / "instance" / "uploads" / "motions" / "model-motion.odt"
        assert copy.read_bytes() == upload.read_bytes()

        # The target now has data: a second restore is refused unless forced.
        again = flask(target, tmp_path, "restore", str(archive))
        assert again.returncode != 0
        assert "the database is not empty" in again.stderr
        forced = flask(target, tmp_path, "restore", "--force", str(archive))
        assert forced.returncode == 0, forced.stderr
        assert table_rows(target_url) == before


def test_a_restore_of_the_wrong_kind_or_a_missing_file_says_so(tmp_path):
    env = site_env(f"sqlite:///{tmp_path / 'empty.db'}", tmp_path / "instance")
    missing = flask(env, tmp_path, "restore", str(tmp_path / "nope.tar.gz"))
    assert missing.returncode != 0
    assert "does not exist" in missing.stderr
