"""Mail delivery benchmark: the outbox worker against raw smtplib, into a discarding sink.

    python bench/mail_bench.py                     # 20,000 recipients, SQLite
    python bench/mail_bench.py -n 5000             # a quicker look
    python bench/mail_bench.py --database-url postgresql+psycopg://postgres@127.0.0.1/bench
    (or BENCH_DATABASE_URL=...; the database is emptied and rebuilt)

Every recipient has their own message, as in a real send: the rows are queued with
``queue_prepared()`` from per-recipient text (first name, personal unsubscribe link),
and the worker builds each row's bytes with ``message_bytes()`` as it sends.

Prints messages/second for (a) raw smtplib.sendmail of the same per-recipient messages
(built beforehand, outside the timing) over one reused connection and (b) the worker's
``deliver_due()`` over one reused connection (claim with a token and lease, build the
message, send phase by phase, mark each row sent right after its 250, renew the claim),
the ratio, and the worker's peak RSS. Targets (issue 14): at least 70% of raw, a worker
under 150 MB. The sink runs in its own process so it does not compete for the GIL.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import resource
import smtplib
import socket
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


class _Discard:
    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        return "250 OK"


def _run_sink(port: int, ready: mp.Event) -> None:
    from aiosmtpd.controller import Controller

    controller = Controller(_Discard(), hostname="127.0.0.1", port=port)
    controller.start()
    ready.set()
    while True:
        time.sleep(3600)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def raw_smtplib(port: int, messages: list[tuple[str, bytes]]) -> float:
    """Messages a second for plain smtplib.sendmail over one connection."""
    with smtplib.SMTP("127.0.0.1", port) as smtp:
        started = time.perf_counter()
        for to, body in messages:
            smtp.sendmail("noreply@bench.example", [to], body)
        return len(messages) / (time.perf_counter() - started)


def _settings(database: str, port: int, instance: str) -> dict:
    return {
        "SQLALCHEMY_DATABASE_URI": database,
        "MAIL_BACKEND": "smtp",
        "MAIL_SERVER": "127.0.0.1",
        "MAIL_PORT": port,
        "MAIL_FILE_DIR": instance,
    }


TEXT = (
    "Hello {name},\n\nThe Trust board meets on Tuesday to decide on the A&E closure. "
    "Come with us: we meet at 5.30 outside the main entrance.\n\n"
    "Unsubscribe: https://campaign.example/u/{token}\n"
)
HTML = (
    "<p>Hello {name},</p><p>The Trust board meets on Tuesday to decide on the A&amp;E "
    'closure.</p><p><a href="https://campaign.example/u/{token}">Unsubscribe</a></p>'
)


def prepare(database: str, port: int, instance: str, count: int) -> list[tuple[str, bytes]]:
    """Schema, then ``count`` personalised rows queued as a real send queues them.
    Returns the raw baseline's messages (the same rows' bytes, built now)."""
    from sqlalchemy import select

    from campaign import create_app
    from campaign.core import migrations
    from campaign.core.outbox import OutboxMessage, PreparedEmail, message_bytes, queue_prepared
    from campaign.extensions import db

    app = create_app("testing", _settings(database, port, instance))
    with app.test_request_context():
        migrations.downgrade("base")
        migrations.upgrade("head")
        messages = (
            PreparedEmail(
                to=f"r{i}@example.org",
                subject="Save our A&E: the board meets on Tuesday",
                text_body=TEXT.format(name=f"Person {i}", token=f"t{i:08d}"),
                html_body=HTML.format(name=f"Person {i}", token=f"t{i:08d}"),
                headers={"List-Unsubscribe": f"<https://campaign.example/u/t{i:08d}>"},
            )
            for i in range(count)
        )
        queue_prepared(messages, template="mailing", group_id=1, group_name="Riverside Health")
        db.session.commit()
        baseline = [
            (row.to_addr, message_bytes(row))
            for row in db.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id))
        ]
        db.session.close()
        db.engine.dispose()
    return baseline


def _worker(database: str, port: int, instance: str, results: mp.Queue) -> None:
    """The worker process: deliver everything, report time and peak memory."""
    from campaign import create_app
    from campaign.core.outbox import deliver_due

    app = create_app("testing", _settings(database, port, instance))
    with app.app_context():
        started = time.perf_counter()
        counts = deliver_due()
        elapsed = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    results.put((counts, elapsed, peak_mb))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--recipients", type=int, default=20_000)
    parser.add_argument(
        "--database-url",
        "--database",
        default=os.environ.get("BENCH_DATABASE_URL"),
        help="SQLAlchemy URL (default: a temporary SQLite file); it is emptied",
    )
    args = parser.parse_args()

    os.environ.setdefault("CAMPAIGN_ENV", "testing")
    ctx = mp.get_context("spawn")
    port = _free_port()
    ready = ctx.Event()
    sink = ctx.Process(target=_run_sink, args=(port, ready), daemon=True)
    sink.start()
    ready.wait(10)
    with tempfile.TemporaryDirectory() as tmp:
        database = args.database_url or f"sqlite:///{tmp}/bench.db"
        baseline = prepare(database, port, tmp, args.recipients)
        raw_rate = raw_smtplib(port, baseline)
        size = sum(len(body) for _, body in baseline) // len(baseline)
        del baseline
        results = ctx.Queue()
        worker = ctx.Process(target=_worker, args=(database, port, tmp, results))
        worker.start()
        counts, elapsed, peak_mb = results.get()
        worker.join()
    sink.terminate()

    rate = counts["sent"] / elapsed
    engine = "PostgreSQL" if "postgres" in database else "SQLite"
    print(
        f"mail benchmark: {args.recipients:,} recipients, {engine}, "
        f"one personalised message each (~{size:,} bytes), one connection each side"
    )
    print(f"  raw smtplib.sendmail        : {raw_rate:8.0f} messages/s")
    sent = f"{counts['sent']:,} sent in {elapsed:.1f} s"
    print(f"  outbox worker (deliver_due) : {rate:8.0f} messages/s  ({sent})")
    print(f"  ratio                       : {rate / raw_rate:8.0%}   (target at least 70%)")
    print(f"  worker peak RSS             : {peak_mb:8.0f} MB  (target under 150 MB)")
    ok = counts["sent"] == args.recipients and rate >= 0.7 * raw_rate and peak_mb < 150
    print("  result                      : " + ("within targets" if ok else "OUTSIDE TARGETS"))
    return 0 if ok else 1


if __name__ == "__main__":
    asyncio.set_event_loop_policy(None)
    raise SystemExit(main())
