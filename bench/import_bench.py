"""CSV import benchmark: 100,000 supporters into one group.

    python bench/import_bench.py                  # 100,000 rows, SQLite
    python bench/import_bench.py -n 20000
    python bench/import_bench.py --database postgresql+psycopg://postgres@127.0.0.1/bench

The file has names, phones, postcodes and tags like a real export, plus 1% bad rows
(broken addresses, missing addresses, markup) that must be reported, not imported.
Prints rows/second for a first import and for re-importing the same file (all updates).
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


def make_csv(rows: int, seed: int = 7) -> tuple[str, int]:
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--rows", type=int, default=100_000)
    parser.add_argument("--database", help="SQLAlchemy URL (default: a temporary SQLite file)")
    args = parser.parse_args()
    os.environ.setdefault("CAMPAIGN_ENV", "testing")

    from campaign import create_app
    from campaign.accounts.models import User
    from campaign.core import migrations
    from campaign.core.models import utcnow
    from campaign.core.passwords import hash_password
    from campaign.extensions import db
    from campaign.groups.models import Group, GroupStatus
    from campaign.people.importing import import_supporters, preview

    text, bad = make_csv(args.rows)
    with tempfile.TemporaryDirectory() as tmp:
        database = args.database or f"sqlite:///{tmp}/import.db"
        app = create_app("testing", {"SQLALCHEMY_DATABASE_URI": database, "MAIL_FILE_DIR": tmp})
        with app.test_request_context():
            migrations.downgrade("base")
            migrations.upgrade("head")
            organiser = User(email="bench@example.org", password_hash=hash_password("x" * 12),
                             email_confirmed_at=utcnow())  # fmt: skip
            group = Group(slug="bench", name="Bench", area="Here", contact_email="b@example.org",
                          status=GroupStatus.APPROVED)  # fmt: skip
            db.session.add_all([organiser, group])
            db.session.commit()
            mapping = preview(text).mapping
            timings = []
            for label in ("first import", "re-import (updates)"):
                started = time.perf_counter()
                report = import_supporters(group, organiser, text, mapping, source="import:bench",
                                           consent_statement="Bench sign-up sheet")  # fmt: skip
                db.session.commit()
                timings.append((label, time.perf_counter() - started, report))
            db.engine.dispose()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    engine = "PostgreSQL" if args.database and "postgres" in args.database else "SQLite"
    print(f"import benchmark: {args.rows:,} rows ({bad:,} bad), {engine}")
    for label, elapsed, report in timings:
        print(
            f"  {label:22}: {args.rows / elapsed:8.0f} rows/s  ({elapsed:.1f} s; created "
            f"{report.created:,}, updated {report.updated:,}, rejected {report.rejected_total:,})"
        )
    print(f"  peak memory           : {peak:8.0f} MB")
    first = timings[0][2]
    ok = first.created == args.rows - bad and first.rejected_total == bad
    print("  result                : " + ("all rows accounted for" if ok else "ROWS MISSING"))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
