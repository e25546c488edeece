"""CSV import benchmark: the import job beside a raw executemany of the same rows.

    python bench/import_bench.py                        # 100,000 rows, SQLite
    python bench/import_bench.py -n 1100000             # the 1.1M-row, ~16 MB file
    python bench/import_bench.py --database-url postgresql+psycopg://postgres@127.0.0.1/bench

The file has names, phones, postcodes and tags like a real export, plus 1% bad rows
(broken addresses, missing addresses, markup) that must be reported, not imported.
The import runs as the web pages run it: the upload in the instance folder, a
background job (in-process) that commits every chunk. In the same run, the same valid
rows go into the supporters table of another group with one raw DBAPI executemany
(no validation, no lookups, no tags): the floor the import is measured against.
Prints rows/second for a first import, for re-importing the same file (all updates)
and for the raw insert, and the import's share of the raw rate. ``--consent`` adds the
organiser's statement of how people agreed (a consent record per person as well);
``--emails-only`` writes the 1.1M-row shape (one short address a line, under 16 MiB).
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FIRST = ["Amara", "Tomasz", "Leila", "Joe", "Priya", "Kwame", "Ines", "Yusuf", "Mei", "Sean"]
LAST = ["Okafor", "Nowak", "Haddad", "Smith", "Patel", "Mensah", "Costa", "Demir", "Chen", "Byrne"]
TAGS = ["nurses", "stall", "unison", "students", "faith groups", "tenants"]


def make_csv(rows: int, seed: int = 7, emails_only: bool = False) -> tuple[str, int]:
    if emails_only:  # the 1.1M-row, 15.7 MiB shape: one short address a line
        lines = ["Email"] + [f"{i}@ex.org" for i in range(rows)]
        return "\n".join(lines) + "\n", 0
    rng = random.Random(seed)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["Email", "First name", "Surname", "Mobile", "Postcode", "Tags"])
    bad = 0
    for i in range(rows):
        email = f"supporter{i}@example.org"
        first = rng.choice(FIRST)
        if i % 100 == 37:
            email, bad = f"supporter{i}@@example", bad + 1
        elif i % 100 == 71:
            email, bad = "", bad + 1
        elif i % 100 == 89:
            first, bad = "<script>", bad + 1
        writer.writerow([
            email, first, rng.choice(LAST), f"07700 9{i % 100000:05d}",
            f"E{rng.randint(1, 20)} {rng.randint(1, 9)}AB", "; ".join(rng.sample(TAGS, 2)),
        ])  # fmt: skip
    return out.getvalue(), bad


def raw_rows(text: str, group_id: int, now) -> list[tuple]:  # noqa: ANN001
    """The valid rows as plain tuples, ready for executemany (built before timing)."""
    reader = csv.reader(io.StringIO(text))
    next(reader)
    rows = []
    for email, first, last, phone, postcode, *_tags in (r + [""] * 5 for r in reader):
        if "@@" in email or not email or "<" in first:
            continue
        rows.append((group_id, email, first, last, phone, postcode, "raw", "none", 0, now, now))
    return rows


def raw_insert(engine, rows: list[tuple]) -> float:  # noqa: ANN001
    sql = (
        "INSERT INTO supporters (group_id, email, first_name, last_name, phone, postcode, "
        "source, updates_status, consent_version, created_at, updated_at) VALUES "
    )
    marks = ", ".join(["?"] * 11) if engine.dialect.name == "sqlite" else ", ".join(["%s"] * 11)
    connection = engine.raw_connection()
    try:
        cursor = connection.cursor()
        started = time.perf_counter()
        if engine.dialect.name == "sqlite":  # our connections leave BEGIN to the caller
            cursor.execute("BEGIN")
        cursor.executemany(f"{sql}({marks})", rows)
        connection.commit()
        return time.perf_counter() - started
    finally:
        connection.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--rows", type=int, default=100_000)
    parser.add_argument(
        "--consent",
        action="store_true",
        help="state how people agreed (one consent record per person too)",
    )
    parser.add_argument(
        "--emails-only",
        action="store_true",
        help="one short address a line (1.1M rows fit in the 16 MiB limit)",
    )
    parser.add_argument(
        "--database-url", "--database", dest="database",
        help="SQLAlchemy URL of an empty database (default: a temporary SQLite file)",
    )  # fmt: skip
    args = parser.parse_args()
    os.environ.setdefault("CAMPAIGN_ENV", "testing")

    text, bad = make_csv(args.rows, emails_only=args.emails_only)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["CAMPAIGN_INSTANCE_PATH"] = str(Path(tmp) / "instance")
        from campaign import create_app
        from campaign.accounts.models import User
        from campaign.core import jobs, migrations
        from campaign.core.models import utcnow
        from campaign.core.passwords import hash_password
        from campaign.extensions import db
        from campaign.groups.models import Group, GroupStatus
        from campaign.people import importing
        from campaign.people.models import Supporter

        database = args.database or f"sqlite:///{tmp}/import.db"
        app = create_app("testing", {"SQLALCHEMY_DATABASE_URI": database, "MAIL_FILE_DIR": tmp})
        timings = []
        with app.test_request_context(method="POST"):
            migrations.downgrade("base")
            migrations.upgrade("head")
            organiser = User(email="bench@example.org", password_hash=hash_password("x" * 12),
                             email_confirmed_at=utcnow())  # fmt: skip
            group = Group(slug="bench", name="Bench", area="Here", contact_email="b@example.org",
                          status=GroupStatus.APPROVED)  # fmt: skip
            floor = Group(slug="raw", name="Raw", area="Here", contact_email="r@example.org",
                          status=GroupStatus.APPROVED)  # fmt: skip
            db.session.add_all([organiser, group, floor])
            db.session.commit()
            mapping = importing.preview(text).mapping
            # The same timestamp value the import binds (a string on SQLite).
            dialect = db.engine.dialect
            stamp = Supporter.__table__.c.created_at.type.dialect_impl(dialect).bind_processor(
                dialect
            )
            rows = raw_rows(text, floor.id, stamp(utcnow()) if stamp else utcnow())
            raw_seconds = raw_insert(db.engine, rows)
            for label in ("first import", "re-import (updates)"):
                token = f"bench{len(timings)}"
                importing.upload_path(group.id, token).write_text(text, encoding="utf-8")
                job = importing.start_import(
                    group, organiser, token, mapping, name="bench.csv",
                    consent_statement="Bench sign-up sheet" if args.consent else "",
                    notes_token=f"{token}notes",
                )  # fmt: skip
                db.session.commit()
                started = time.perf_counter()
                jobs.start(job)
                elapsed = time.perf_counter() - started
                db.session.expire_all()
                done = db.session.get(jobs.BackgroundJob, job.id)
                timings.append((label, elapsed, done.status, dict(done.result)))
            db.session.close()
            db.engine.dispose()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    engine = "PostgreSQL" if args.database and "postgres" in args.database else "SQLite"
    size = len(text.encode()) / (1 << 20)
    shape = "addresses only" if args.emails_only else "names, phones, postcodes, 2 tags"
    print(f"import benchmark: {args.rows:,} rows, {size:.1f} MiB ({bad:,} bad), {engine}")
    print(
        f"  file                  : {shape}; consent statement: {'yes' if args.consent else 'no'}"
    )
    raw_rate = len(rows) / raw_seconds
    print(f"  raw executemany       : {raw_rate:8.0f} rows/s  ({raw_seconds:.1f} s, {len(rows):,})")
    ok = True
    for label, elapsed, status, result in timings:
        rate = args.rows / elapsed
        print(
            f"  {label:22}: {rate:8.0f} rows/s  ({elapsed:.1f} s; {rate / raw_rate:.0%} of raw; "
            f"created {result['created']:,}, updated {result['updated']:,}, "
            f"rejected {result['rejected_total']:,})"
        )
        ok = ok and status == "done"
    print(f"  peak memory           : {peak:8.0f} MB")
    first = timings[0][3]
    ok = ok and first["created"] == args.rows - bad and first["rejected_total"] == bad
    print("  result                : " + ("all rows accounted for" if ok else "ROWS MISSING"))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
