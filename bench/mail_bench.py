"""Mail delivery benchmark: the outbox worker against raw smtplib, into a discarding sink.

    python bench/mail_bench.py                 # 50,000 recipients, SQLite
    python bench/mail_bench.py -n 5000         # a quicker look
    python bench/mail_bench.py --database postgresql+psycopg://postgres@127.0.0.1/bench

Prints messages/second for (a) raw smtplib over one reused connection and (b) the
worker's ``deliver_due()`` (claim with a lease, send, mark each row sent), the ratio,
and the worker's peak memory. Targets (issue 3): at least 50% of raw, under 300 MB.
The sink runs in its own process so it does not compete with the sender for the GIL.
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


def raw_smtplib(port: int, count: int, body: bytes) -> float:
    """Messages a second for plain smtplib.sendmail over one connection."""
    with smtplib.SMTP("127.0.0.1", port) as smtp:
        started = time.perf_counter()
        for i in range(count):
            smtp.sendmail("noreply@bench.example", [f"raw{i}@example.org"], body)
        return count / (time.perf_counter() - started)


def _settings(database: str, port: int, instance: str) -> dict:
    return {
        "SQLALCHEMY_DATABASE_URI": database,
        "MAIL_BACKEND": "smtp",
        "MAIL_SERVER": "127.0.0.1",
        "MAIL_PORT": port,
        "MAIL_FILE_DIR": instance,
        "MAIL_BATCH_SIZE": 500,
    }


def prepare(database: str, port: int, instance: str, count: int) -> bytes:
    """Schema, then ``count`` queued rows of one rendered message (bulk inserted)."""
    from sqlalchemy import insert

    from campaign import create_app
    from campaign.core import migrations
    from campaign.core.outbox import OutboxMessage, message_bytes, queue_email
    from campaign.extensions import db

    app = create_app("testing", _settings(database, port, instance))
    with app.test_request_context():
        migrations.downgrade("base")
        migrations.upgrade("head")
        template = queue_email("template@example.org", "password_changed")
        sample = message_bytes(template)
        db.session.rollback()
        now = template.created_at
        rows = [
            {
                "to_addr": f"r{i}@example.org",
                "from_addr": template.from_addr,
                "subject": template.subject,
                "text_body": template.text_body,
                "html_body": template.html_body,
                "headers": {},
                "message_id": f"<bench-{i}@bench.example>",
                "category": template.category,
                "template": template.template,
                "priority": template.priority,
                "status": "queued",
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
                "updated_at": now,
            }
            for i in range(count)
        ]
        for start in range(0, count, 5000):
            db.session.execute(insert(OutboxMessage), rows[start : start + 5000])
        db.session.commit()
        db.engine.dispose()
    return sample


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
    parser.add_argument("-n", "--recipients", type=int, default=50_000)
    parser.add_argument("--raw", type=int, default=20_000, help="messages for the raw baseline")
    parser.add_argument("--database", help="SQLAlchemy URL (default: a temporary SQLite file)")
    args = parser.parse_args()

    os.environ.setdefault("CAMPAIGN_ENV", "testing")
    ctx = mp.get_context("spawn")
    port = _free_port()
    ready = ctx.Event()
    sink = ctx.Process(target=_run_sink, args=(port, ready), daemon=True)
    sink.start()
    ready.wait(10)
    with tempfile.TemporaryDirectory() as tmp:
        database = args.database or f"sqlite:///{tmp}/bench.db"
        sample = prepare(database, port, tmp, args.recipients)
        raw_rate = raw_smtplib(port, min(args.raw, args.recipients), sample)
        results = ctx.Queue()
        worker = ctx.Process(target=_worker, args=(database, port, tmp, results))
        worker.start()
        counts, elapsed, peak_mb = results.get()
        worker.join()
    sink.terminate()

    rate = counts["sent"] / elapsed
    engine = "PostgreSQL" if args.database and "postgres" in args.database else "SQLite"
    print(
        f"mail benchmark: {args.recipients:,} recipients, {engine}, message {len(sample):,} bytes"
    )
    print(f"  raw smtplib, one connection : {raw_rate:8.0f} messages/s")
    sent = f"{counts['sent']:,} sent in {elapsed:.1f} s"
    print(f"  outbox worker (deliver_due) : {rate:8.0f} messages/s  ({sent})")
    print(f"  ratio                       : {rate / raw_rate:8.0%}   (target at least 50%)")
    print(f"  worker peak memory          : {peak_mb:8.0f} MB  (target under 300 MB)")
    ok = counts["sent"] == args.recipients and rate >= 0.5 * raw_rate and peak_mb < 300
    print("  result                      : " + ("within targets" if ok else "OUTSIDE TARGETS"))
    return 0 if ok else 1


if __name__ == "__main__":
    asyncio.set_event_loop_policy(None)
    raise SystemExit(main())
