"""The production path, for real: Redis, a Celery worker process, an SMTP server.

- mail dispatched through Redis is delivered by the worker;
- 1,000 recipients each get exactly one message;
- a worker killed (SIGKILL) in the middle of a send, then replaced, leaves nobody
  without their message and sends at most one extra copy (the one in flight when it
  died), which carries the same Message-ID.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from email import message_from_bytes, policy
from pathlib import Path

import pytest
import redis
from aiosmtpd.controller import Controller
from sqlalchemy import func, select

from campaign import create_app
from campaign.core import migrations
from campaign.core.outbox import OutboxMessage, OutboxStatus, dispatch_if_committed, queue_email
from campaign.extensions import db
from tests.smtp import free_port

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/14")
ROOT = Path(__file__).resolve().parents[2]
SECRET = "worker-test-secret-key-0123456789abcdef"


class SlowSink:
    """An SMTP server that records every message and takes a moment over each."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.received: list[tuple[str, str]] = []  # (recipient, Message-ID)

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        if self.delay:
            await asyncio.sleep(self.delay)
        message_id = message_from_bytes(envelope.original_content, policy=policy.default)[
            "Message-ID"
        ]
        for recipient in envelope.rcpt_tos:
            self.received.append((recipient, message_id))
        return "250 Message accepted"


def _redis_or_skip() -> redis.Redis:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.exceptions.ConnectionError:
        if os.environ.get("CI"):
            pytest.fail(f"Redis is not reachable at {REDIS_URL}")
        pytest.skip(f"Redis is not reachable at {REDIS_URL}")
    return client


class Harness:
    """A database, an SMTP sink, an app that queues mail, and worker processes."""

    def __init__(
        self,
        tmp_path: Path,
        sink_delay: float,
        database: str | None = None,
        settings: dict[str, str] | None = None,
    ) -> None:
        self.redis = _redis_or_skip()
        self.redis.flushdb()
        self.sink = SlowSink(sink_delay)
        self.controller = Controller(self.sink, hostname="127.0.0.1", port=free_port())
        self.controller.start()
        database = database or f"sqlite:///{tmp_path / 'worker.db'}"
        self.env = (
            os.environ
            | {
                "CAMPAIGN_ENV": "development",
                "CAMPAIGN_INSTANCE_PATH": str(tmp_path / "instance"),
                "DATABASE_URL": database,
                "CELERY_BROKER_URL": REDIS_URL,
                "MAIL_BACKEND": "smtp",
                "MAIL_SERVER": "127.0.0.1",
                "MAIL_PORT": str(self.controller.port),
                "MAIL_LEASE_SECONDS": "3",
                "SECRET_KEY": SECRET,
                "ENCRYPTION_KEYS": "w1:" + "A" * 43,
                "PYTHONPATH": str(ROOT),
            }
            | (settings or {})
        )
        self.cwd = tmp_path
        self.app = create_app(
            "testing",
            {"SQLALCHEMY_DATABASE_URI": database, "CELERY_BROKER_URL": REDIS_URL,
             "SECRET_KEY": SECRET, "MAIL_FILE_DIR": str(tmp_path / "mail")},
        )  # fmt: skip
        with self.app.app_context():
            migrations.upgrade("head")
        self.workers: list[subprocess.Popen] = []

    def start_worker(self, name: str | None = None) -> subprocess.Popen:
        name = name or f"w{len(self.workers)}@test"
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "campaign.celery", "worker", "--pool=threads",
             "--concurrency=1", "--without-gossip", "--without-mingle", "--loglevel=warning",
             "-n", name],
            env=self.env, cwd=self.cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        self.workers.append(worker)
        control = self.app.extensions["celery"].control
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if worker.poll() is not None:
                pytest.fail(f"the Celery worker exited: {worker.stdout.read()}")
            # Publish only once the worker answers: it binds its queue when it starts.
            if control.ping(destination=[name], timeout=0.5):
                return worker
        pytest.fail("the Celery worker did not start within 60 s")

    def queue(self, count: int) -> None:
        with self.app.test_request_context():
            for i in range(count):
                queue_email(f"r{i:05d}@example.org", "password_changed")
            db.session.commit()
            dispatch_if_committed()  # sends the task to Redis; nothing is delivered here

    def dispatch(self) -> None:
        """What Celery beat does every minute."""
        self.app.extensions["celery"].send_task("campaign.deliver_outbox")

    def unsent(self) -> int:
        with self.app.app_context():
            return db.session.scalar(
                select(func.count(OutboxMessage.id)).where(
                    OutboxMessage.status != OutboxStatus.SENT
                )
            )

    def close(self) -> None:
        for worker in self.workers:
            if worker.poll() is None:
                worker.terminate()
                try:
                    worker.communicate(timeout=20)
                except subprocess.TimeoutExpired:
                    worker.kill()
                    worker.communicate()
        self.controller.stop()
        with self.app.app_context():
            db.engine.dispose()
        self.redis.flushdb()


@pytest.fixture
def harness(tmp_path, request):
    made = Harness(tmp_path, sink_delay=getattr(request, "param", 0.0))
    yield made
    made.close()


def _wait_for(condition, timeout: float, every: float = 0.2, then=None) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        if then:
            then()
        time.sleep(every)
    return condition()


@pytest.mark.slow
def test_a_thousand_recipients_each_get_exactly_one_message(harness):
    harness.start_worker()
    harness.queue(1000)
    assert _wait_for(lambda: harness.unsent() == 0, timeout=120)
    recipients = Counter(address for address, _ in harness.sink.received)
    assert len(recipients) == 1000
    assert set(recipients.values()) == {1}


@pytest.mark.slow
@pytest.mark.parametrize("harness", [0.004], indirect=True)
def test_a_worker_killed_mid_send_loses_nothing_and_repeats_at_most_one(harness):
    first = harness.start_worker()
    harness.queue(1000)
    assert _wait_for(lambda: len(harness.sink.received) >= 250, timeout=60)
    os.kill(first.pid, signal.SIGKILL)
    first.wait(timeout=10)
    at_kill = len(harness.sink.received)
    assert at_kill < 1000, "the send finished before the kill; slow the sink down"

    harness.start_worker()
    # The dead worker's claimed rows come back when their lease (3 s here) runs out;
    # beat would dispatch every minute, the test does it every couple of seconds.
    last = [0.0]

    def nudge() -> None:
        if time.monotonic() - last[0] > 2:
            harness.dispatch()
            last[0] = time.monotonic()

    assert _wait_for(lambda: harness.unsent() == 0, timeout=120, then=nudge)

    per_recipient = Counter(address for address, _ in harness.sink.received)
    assert len(per_recipient) == 1000  # nobody missing
    repeated = [address for address, n in per_recipient.items() if n > 1]
    assert len(repeated) <= 1 and all(per_recipient[a] == 2 for a in repeated)
    for address in repeated:  # the repeat is recognisably the same message
        ids = {mid for a, mid in harness.sink.received if a == address}
        assert len(ids) == 1
