"""The production path: mail dispatched to Redis and delivered by a real Celery worker."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from sqlalchemy import select

from campaign import create_app
from campaign.core import migrations
from campaign.core.outbox import OutboxMessage, OutboxStatus, dispatch_if_committed, queue_email
from campaign.extensions import db

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/14")
ROOT = Path(__file__).resolve().parents[2]


def _redis_or_skip() -> redis.Redis:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.exceptions.ConnectionError:
        if os.environ.get("CI"):
            pytest.fail(f"Redis is not reachable at {REDIS_URL}")
        pytest.skip(f"Redis is not reachable at {REDIS_URL}")
    return client


@pytest.fixture
def worker_setup(tmp_path):
    client = _redis_or_skip()
    client.flushdb()
    database = f"sqlite:///{tmp_path / 'worker.db'}"
    env = os.environ | {
        "CAMPAIGN_ENV": "development",
        "CAMPAIGN_INSTANCE_PATH": str(tmp_path / "instance"),
        "DATABASE_URL": database,
        "CELERY_BROKER_URL": REDIS_URL,
        "MAIL_BACKEND": "file",
        "MAIL_FILE_DIR": str(tmp_path / "mail"),
        "SECRET_KEY": "worker-test-secret-key-0123456789abcdef",
        "ENCRYPTION_KEYS": "w1:" + "A" * 43,
        "PYTHONPATH": str(ROOT),
    }
    app = create_app("testing", {
        "SQLALCHEMY_DATABASE_URI": database,
        "CELERY_BROKER_URL": REDIS_URL,
        "SECRET_KEY": env["SECRET_KEY"],
        "MAIL_FILE_DIR": env["MAIL_FILE_DIR"],
    })  # fmt: skip
    with app.app_context():
        migrations.upgrade("head")
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "campaign.celery", "worker", "--pool=solo",
         "--without-gossip", "--without-mingle", "--loglevel=warning"],
        env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        _wait_until_ready(app, worker)
        yield app, tmp_path / "mail"
    finally:
        worker.terminate()
        try:
            output, _ = worker.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
            output, _ = worker.communicate()
        if os.environ.get("CAMPAIGN_SHOW_WORKER_LOG"):
            print(output)
        client.flushdb()


def _wait_until_ready(app, worker: subprocess.Popen) -> None:
    """Publish only once the worker answers: it binds its queue when it starts."""
    control = app.extensions["celery"].control
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            pytest.fail(f"the Celery worker exited: {worker.stdout.read()}")
        if control.ping(timeout=0.5):
            return
    pytest.fail("the Celery worker did not start within 60 s")


@pytest.mark.slow
def test_a_real_worker_delivers_mail_dispatched_through_redis(worker_setup):
    app, mail_dir = worker_setup
    with app.test_request_context():
        rows = [queue_email(f"w{i}@example.org", "password_changed") for i in range(5)]
        db.session.commit()
        ids = [row.id for row in rows]
        dispatch_if_committed()  # sends the task to Redis; nothing is delivered here

        deadline = time.monotonic() + 60
        statuses: list[str] = []
        while time.monotonic() < deadline:
            db.session.rollback()  # a new transaction sees the worker's commits
            statuses = list(
                db.session.scalars(
                    select(OutboxMessage.status)
                    .where(OutboxMessage.id.in_(ids))
                    .order_by(OutboxMessage.id)
                )
            )
            if all(status == OutboxStatus.SENT for status in statuses):
                break
            time.sleep(0.5)
        assert statuses == [OutboxStatus.SENT] * 5
        db.engine.dispose()
    assert len(list(mail_dir.glob("*.eml"))) == 5
