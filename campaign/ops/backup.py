"""`flask backup` and `flask restore`: the database and the uploaded files in one archive.

An archive is a gzipped tar with ``manifest.json`` (what it holds: database kind, schema
revision, rows per table, when it was made), the database (``database.sqlite3`` made
with SQLite's online backup API, which is safe while the site runs, or
``database.pgdump`` from ``pg_dump --format=custom``) and ``uploads/``. A restore goes
only into an empty database unless forced, then checks every table's row count against
the manifest, so a restore that silently lost rows fails loudly.
"""

from __future__ import annotations

import io
import json
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import current_app

from campaign.extensions import db

SQLITE_NAME = "database.sqlite3"
PG_NAME = "database.pgdump"


class BackupError(Exception):
    """A backup or restore that cannot go ahead; the message says why."""


def uploads_dir() -> Path:
    """Where uploaded files live (``UPLOADS_DIR``, else ``<instance>/uploads``)."""
    configured = current_app.config.get("UPLOADS_DIR")
    return Path(configured) if configured else Path(current_app.instance_path) / "uploads"


def row_counts(engine: sa.Engine) -> dict[str, int]:
    """Rows in every table of the database (alembic's bookkeeping included)."""
    inspector = sa.inspect(engine)
    counts = {}
    with engine.connect() as connection:
        for table in sorted(inspector.get_table_names()):
            quoted = engine.dialect.identifier_preparer.quote(table)
            counts[table] = connection.execute(sa.text(f"SELECT count(*) FROM {quoted}")).scalar()  # noqa: S608
    return counts


def _libpq_url(engine: sa.Engine) -> str:
    """The SQLAlchemy URL as pg_dump and pg_restore understand it."""
    return engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


def _pg_tool(name: str, *args: str) -> None:
    executable = shutil.which(name)
    if executable is None:
        raise BackupError(f"{name} is not installed (apt-get install postgresql-client).")
    result = subprocess.run([executable, *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise BackupError(f"{name} failed: {result.stderr.strip()[:500]}")


def _add_bytes(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = int(datetime.now(UTC).timestamp())
    info.mode = 0o600
    archive.addfile(info, io.BytesIO(data))


@dataclass
class BackupResult:
    path: Path
    tables: int
    rows: int
    uploads: int


def backup(target: Path) -> BackupResult:
    """Write an archive of the database and uploads to ``target`` (mode 0600)."""
    from campaign.core.migrations import current_revision

    engine = db.engine
    counts = row_counts(engine)
    uploads = uploads_dir()
    upload_files = sorted(p for p in uploads.rglob("*") if p.is_file()) if uploads.is_dir() else []
    with tempfile.TemporaryDirectory() as tmp:
        dump = Path(tmp) / "dump"
        if engine.dialect.name == "sqlite":
            name = SQLITE_NAME
            source = sqlite3.connect(engine.url.database)
            copy = sqlite3.connect(dump)
            try:
                source.backup(copy)
            finally:
                copy.close()
                source.close()
        elif engine.dialect.name == "postgresql":
            name = PG_NAME
            _pg_tool("pg_dump", "--format=custom", "--no-owner", f"--file={dump}",
                     _libpq_url(engine))  # fmt: skip
        else:
            raise BackupError(f"cannot back up a {engine.dialect.name} database")
        manifest = {
            "format": 1,
            "created_at": datetime.now(UTC).isoformat(),
            "database": engine.dialect.name,
            "revision": current_revision(),
            "rows": counts,
            "uploads": [str(p.relative_to(uploads)) for p in upload_files],
        }
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")
        partial.touch(mode=0o600)
        with tarfile.open(partial, "w:gz") as archive:
            _add_bytes(archive, "manifest.json", json.dumps(manifest, indent=2).encode())
            archive.add(dump, arcname=name)
            for path in upload_files:
                archive.add(path, arcname=f"uploads/{path.relative_to(uploads)}")
        partial.replace(target)
    return BackupResult(target, len(counts), sum(counts.values()), len(upload_files))


def _is_empty(engine: sa.Engine) -> bool:
    return not sa.inspect(engine).get_table_names()


def _clear(engine: sa.Engine) -> None:
    """Drop every table (restore --force)."""
    metadata = sa.MetaData()
    metadata.reflect(engine)
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            for table in metadata.tables.values():
                quoted = engine.dialect.identifier_preparer.quote(table.name)
                connection.execute(sa.text(f"DROP TABLE IF EXISTS {quoted} CASCADE"))
        else:
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            metadata.drop_all(connection)


def _safe_members(archive: tarfile.TarFile) -> list[tarfile.TarInfo]:
    members = []
    for member in archive.getmembers():
        path = Path(member.name)
        if path.is_absolute() or ".." in path.parts or not (member.isfile() or member.isdir()):
            raise BackupError(f"archive member {member.name!r} is not allowed")
        members.append(member)
    return members


def restore(source: Path, *, force: bool = False) -> dict[str, Any]:
    """Restore an archive into this app's database and uploads folder."""
    engine = db.engine
    if not source.is_file():
        raise BackupError(f"{source} does not exist")
    if not _is_empty(engine):
        if not force:
            raise BackupError(
                "the database is not empty; restore only into an empty one, "
                "or pass --force to replace everything in it"
            )
        _clear(engine)
    with tempfile.TemporaryDirectory() as tmp, tarfile.open(source, "r:gz") as archive:
        archive.extractall(tmp, members=_safe_members(archive), filter="data")
        root = Path(tmp)
        manifest = json.loads((root / "manifest.json").read_text())
        if manifest.get("database") != engine.dialect.name:
            raise BackupError(
                f"the archive holds a {manifest.get('database')} database; "
                f"this site uses {engine.dialect.name}"
            )
        db.session.close()
        engine.dispose()
        if engine.dialect.name == "sqlite":
            copy = sqlite3.connect(root / SQLITE_NAME)
            target = sqlite3.connect(engine.url.database)
            try:
                copy.backup(target)
            finally:
                target.close()
                copy.close()
        else:
            _pg_tool("pg_restore", "--no-owner", "--exit-on-error",
                     f"--dbname={_libpq_url(engine)}", str(root / PG_NAME))  # fmt: skip
        engine.dispose()
        uploads = uploads_dir()
        restored_uploads = 0
        if (root / "uploads").is_dir():
            for path in sorted((root / "uploads").rglob("*")):
                if path.is_file():
                    destination = uploads / path.relative_to(root / "uploads")
                    destination.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(path, destination)
                    restored_uploads += 1
    counts = row_counts(engine)
    expected = manifest["rows"]
    if counts != expected:
        different = sorted(
            t for t in set(counts) | set(expected) if counts.get(t) != expected.get(t)
        )
        raise BackupError("restored row counts differ from the backup in: " + ", ".join(different))
    return {"tables": len(counts), "rows": sum(counts.values()), "uploads": restored_uploads,
            "created_at": manifest["created_at"]}  # fmt: skip
