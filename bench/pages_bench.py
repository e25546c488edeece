"""Big-list pages benchmark: 100,000 supporters in one group, one mailing sent to all.

    python bench/pages_bench.py                      # SQLite (a temporary file)
    python bench/pages_bench.py -n 20000 --requests 100
    python bench/pages_bench.py --database-url postgresql+psycopg://postgres@127.0.0.1/bench

Times, through the in-process test client logged in as the group's organiser, a minimal
page (three queries of its own: the session's user, the group, the membership; then the
layout, as every page has it) as the same-run baseline, then the sent-mail report's
"who has not received it" list (first page and a page far in), and the supporters
search: by the commonest last name (about 2% of people: names are drawn Zipf-like from
600 first and 1,200 last names), by first and last name, by an address fragment and by
a two-letter prefix many names share. Prints the median and p99 of each and its p99
as a multiple of the baseline's. The target is under 4x.

The database given is emptied (every table dropped) before seeding.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FIRST = ["Amara", "Tomasz", "Leila", "Joe", "Priya", "Kwame", "Ines", "Yusuf", "Mei", "Sean"]
LAST = ["Okafor", "Nowak", "Haddad", "Smith", "Patel", "Mensah", "Costa", "Demir", "Chen", "Byrne"]
# A real list has many names, a few of them common: the named ones above, then made-up
# ones, drawn with weights 1/(rank + 10) (Zipf-like), so the commonest first name and
# the commonest last name ("Amara", "Okafor") each cover about 2% of people.
SYLLABLES = ["ka", "mi", "lo", "ra", "te", "su", "no", "da", "vi", "ze", "ba", "ho"]


def name_pool(named: list[str], size: int) -> tuple[list[str], list[float]]:
    made = [(a + b + c).capitalize() for a in SYLLABLES for b in SYLLABLES for c in SYLLABLES]
    pool = named + made[: size - len(named)]
    return pool, [1 / (rank + 10) for rank in range(1, len(pool) + 1)]


TARGET = 4.0
CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def seed(db, group, organiser, rows: int) -> int:  # noqa: ANN001
    """Supporters, their consent, and one mailing's outbox rows; returns the mailing id."""
    import sqlalchemy as sa

    from campaign.core.models import utcnow
    from campaign.core.outbox import MailCategory, OutboxMessage, OutboxStatus
    from campaign.mailing.models import Mailing, MailingStatus
    from campaign.people.models import (
        ConsentAction,
        ConsentMethod,
        ConsentRecord,
        Supporter,
        Suppression,
        SuppressionReason,
        UpdatesStatus,
    )

    rng = random.Random(11)
    firsts, first_weights = name_pool(FIRST, 600)
    lasts, last_weights = name_pool(LAST, 1200)
    now = utcnow()
    queued_at = now - timedelta(days=2)
    chunk = 5_000
    for start in range(0, rows, chunk):
        db.session.execute(
            sa.insert(Supporter),
            [
                {"group_id": group.id, "email": f"supporter{i}@example.org",
                 "first_name": rng.choices(firsts, first_weights)[0],
                 "last_name": rng.choices(lasts, last_weights)[0],
                 "postcode": f"E{rng.randint(1, 20)} {rng.randint(1, 9)}AB",
                 "updates_status": UpdatesStatus.SUBSCRIBED, "updates_confirmed_at": now,
                 "created_at": now, "updated_at": now, "phone": "", "source": "bench",
                 "consent_version": 1}
                for i in range(start, min(start + chunk, rows))
            ],
        )  # fmt: skip
    db.session.commit()
    ids = list(db.session.scalars(sa.select(Supporter.id).order_by(Supporter.id)))
    mailing = Mailing(group_id=group.id, author_id=organiser.id, subject="Save our A&E",
                      body_markdown="Hello {{first_name}}", segment={"kind": "subscribers"},
                      status=MailingStatus.SENT, recipient_count=len(ids), queued_at=queued_at,
                      finished_at=now)  # fmt: skip
    db.session.add(mailing)
    db.session.flush()
    text = "Hello, the board meets on Tuesday. " * 12
    html = "<p>" + text + "</p>"

    def status_of(n: int) -> str:  # 2% not delivered: waiting, failed or skipped
        if n % 50 == 7:
            return (OutboxStatus.QUEUED, OutboxStatus.FAILED, OutboxStatus.SKIPPED)[n % 3]
        return OutboxStatus.SENT

    for start in range(0, len(ids), chunk):
        db.session.execute(
            sa.insert(OutboxMessage),
            [
                {"to_addr": f"supporter{n}@example.org", "from_addr": "noreply@example.org",
                 "subject": "Save our A&E", "text_body": text, "html_body": html,
                 "headers": {}, "message_id": f"<bench{n}@example.org>",
                 "category": MailCategory.MARKETING, "template": "mailing", "priority": 50,
                 "status": status_of(n), "attempts": 1, "next_attempt_at": queued_at,
                 "sent_at": now if status_of(n) == OutboxStatus.SENT else None,
                 "created_at": queued_at, "updated_at": now, "group_id": group.id,
                 "mailing_id": mailing.id, "supporter_id": supporter_id}
                for n, supporter_id in enumerate(ids[start : start + chunk], start)
            ],
        )  # fmt: skip
    # 3% unsubscribed since the mailing went out (consent withdrawn, suppressed).
    gone = ids[::33]
    db.session.execute(
        sa.update(Supporter)
        .where(Supporter.id.in_(gone))
        .values(updates_status=UpdatesStatus.UNSUBSCRIBED)
    )
    for start in range(0, len(gone), chunk):
        part = gone[start : start + chunk]
        db.session.execute(
            sa.insert(ConsentRecord),
            [
                {"supporter_id": sid, "group_id": group.id, "purpose": "group_updates",
                 "action": ConsentAction.WITHDRAWN, "method": ConsentMethod.ONE_CLICK,
                 "wording": "", "detail": "", "created_at": now, "updated_at": now}
                for sid in part
            ],
        )  # fmt: skip
        db.session.execute(
            sa.insert(Suppression),
            [
                {"group_id": group.id, "email": f"supporter{ids.index(sid)}@example.org",
                 "reason": SuppressionReason.UNSUBSCRIBED, "detail": "",
                 "created_at": now, "updated_at": now}
                for sid in part
            ],
        )  # fmt: skip
    db.session.commit()
    return mailing.id


def show_slow_sql(app, client, pages, threshold_ms: float) -> None:  # noqa: ANN001
    """One request a page, printing each statement slower than the threshold."""
    import sqlalchemy as sa

    from campaign.extensions import db

    with app.app_context():
        engine = db.engine
    started: list[float] = []

    def before(*_args: object) -> None:
        started.append(time.perf_counter())

    def after(_conn, _cursor, statement, parameters, *_rest) -> None:  # noqa: ANN001
        elapsed = (time.perf_counter() - started.pop()) * 1000
        if elapsed >= threshold_ms:
            print(f"    {elapsed:7.1f} ms  {' '.join(statement.split())[:300]}  {parameters}")

    sa.event.listen(engine, "before_cursor_execute", before)
    sa.event.listen(engine, "after_cursor_execute", after)
    for label, url, _expect in pages:
        print(f"  {label}:")
        client.get(url)
    sa.event.remove(engine, "before_cursor_execute", before)
    sa.event.remove(engine, "after_cursor_execute", after)


def timed(client, url: str, requests: int, expect: str | None = None) -> list[float]:  # noqa: ANN001
    for _ in range(max(3, requests // 10)):  # warm up caches and the plan cache
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
        if expect is not None:
            assert expect in response.get_data(as_text=True), (url, expect)
    timings = []
    for _ in range(requests):
        started = time.perf_counter()
        response = client.get(url)
        timings.append(time.perf_counter() - started)
        assert response.status_code == 200
    return timings


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))]


def prepare(args: argparse.Namespace) -> tuple[int, float]:
    """Migrate and seed (or, with --reuse, find the seeded mailing); ANALYZE."""
    import sqlalchemy as sa

    from campaign.accounts.models import User
    from campaign.core import migrations
    from campaign.core.models import utcnow
    from campaign.core.passwords import hash_password
    from campaign.extensions import db
    from campaign.groups.models import Group, GroupStatus, Membership, Role

    reuse = args.reuse and sa.inspect(db.engine).has_table("groups")
    if not reuse:  # start empty, whatever was there (a test run leaves its own state)
        existing = sa.MetaData()
        existing.reflect(db.engine)
        existing.drop_all(db.engine)
    migrations.upgrade("head")
    seeded = 0.0
    if reuse:
        mailing_id = db.session.scalar(sa.text("SELECT max(id) FROM mailings"))
    else:
        organiser = User(email="bench@example.org", password_hash=hash_password("x" * 12),
                         display_name="Bench Organiser", email_confirmed_at=utcnow())  # fmt: skip
        group = Group(slug="bench", name="Bench", area="Here", contact_email="b@example.org",
                      status=GroupStatus.APPROVED)  # fmt: skip
        db.session.add_all([organiser, group])
        db.session.flush()
        db.session.add(Membership(group_id=group.id, user_id=organiser.id, role=Role.ORGANISER))
        db.session.commit()
        started = time.perf_counter()
        mailing_id = seed(db, group, organiser, args.supporters)
        seeded = time.perf_counter() - started
    db.session.commit()
    if db.engine.dialect.name == "postgresql":
        with db.engine.connect() as connection:
            connection.execution_options(isolation_level="AUTOCOMMIT").execute(
                sa.text("VACUUM ANALYZE")
            )
    else:
        with db.engine.begin() as connection:
            connection.execute(sa.text("ANALYZE"))
    return mailing_id, seeded


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--supporters", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200, help="timed requests per page")
    parser.add_argument("--database-url", help="SQLAlchemy URL (default: temporary SQLite)")
    parser.add_argument("--queries", action="store_true", help="print each page's SQL count")
    parser.add_argument(
        "--slow-sql",
        type=float,
        default=0,
        help="print statements slower than this many ms (one request a page)",
    )
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="keep the data already in --database-url (upgrade, no reseed)",
    )
    args = parser.parse_args()
    os.environ.setdefault("CAMPAIGN_ENV", "testing")

    import sqlalchemy as sa
    from flask import render_template_string

    from campaign import create_app
    from campaign.extensions import db
    from campaign.groups.access import load_group
    from campaign.groups.models import Role

    with tempfile.TemporaryDirectory() as tmp:
        database = args.database_url or f"sqlite:///{tmp}/pages.db"
        app = create_app("testing", {"SQLALCHEMY_DATABASE_URI": database, "MAIL_FILE_DIR": tmp})

        def minimal(slug: str) -> str:
            """The baseline: the session's user, the group, the membership; a base page."""
            access = load_group(slug, role=Role.ORGANISER)
            return render_template_string(
                '{% extends "base.html" %}{% block content %}<h1>{{ g.name }}</h1>{% endblock %}',
                g=access.group,
            )

        app.add_url_rule("/bench/<slug>/minimal", "bench_minimal", minimal)
        with app.app_context():
            mailing_id, seeded = prepare(args)

        client = app.test_client()
        page = client.get("/login").get_data(as_text=True)
        token = CSRF.search(page).group(1)
        response = client.post("/login", data={"csrf_token": token, "email": "bench@example.org",
                                               "password": "x" * 12})  # fmt: skip
        assert response.status_code == 302, "could not log in"

        report = f"/g/bench/mailings/{mailing_id}"
        pages = [
            ("minimal 3-query page", "/bench/bench/minimal", None),
            ("not received, page 1", report, "Not received yet"),
            ("not received, page 20", f"{report}?page=20", "Not received yet"),
            ("search by name", "/g/bench/people?q=okafor", "supporters match"),  # the commonest
            ("search by name, 2 words", "/g/bench/people?q=amara+okafor", "supporters match"),
            ("search email fragment", "/g/bench/people?q=supporter4711", "match"),
            ("search common prefix", "/g/bench/people?q=ka", "supporters match"),
            ("supporter list", "/g/bench/people", "Supporters"),
        ]
        counts: dict[str, int] = {}
        if args.queries:
            with app.app_context():
                statements: list[str] = []

                def count(*_a: object, **_k: object) -> None:
                    statements.append("x")

                sa.event.listen(db.engine, "before_cursor_execute", count)
                for label, url, _expect in pages:
                    statements.clear()
                    client.get(url)
                    counts[label] = len(statements)
                sa.event.remove(db.engine, "before_cursor_execute", count)
        if args.slow_sql:
            show_slow_sql(app, client, pages, args.slow_sql)
        results = {label: timed(client, url, args.requests, expect) for label, url, expect in pages}
        with app.app_context():
            db.engine.dispose()

    engine = "PostgreSQL" if database.startswith("postgresql") else "SQLite"
    print(f"pages benchmark: {args.supporters:,} supporters, one mailing to all, {engine}; "
          f"{args.requests} requests a page (seeded in {seeded:.0f} s)")  # fmt: skip
    base = p99(results["minimal 3-query page"])
    failed = False
    for label, timings in results.items():
        ratio = p99(timings) / base
        flag = "" if label.startswith("minimal") or ratio < TARGET else "  OVER TARGET"
        failed = failed or bool(flag)
        queries = f"  {counts[label]:2d} queries" if counts else ""
        median, tail = statistics.median(timings) * 1000, p99(timings) * 1000
        print(f"  {label:24}: median {median:7.1f} ms  p99 {tail:7.1f} ms  "
              f"p99 ratio {ratio:5.2f}x{queries}{flag}")  # fmt: skip
    print(f"  target: every page's p99 under {TARGET:.0f}x the minimal page's")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
