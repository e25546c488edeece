"""The import as it runs in production: a real Celery worker on Redis, a SQLite file.

While a big import runs in the worker, another group's public sign-up goes through
(no "database is locked"): the import commits chunk by chunk, each its own short
write transaction, instead of holding the write lock for the whole file.
"""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from campaign import create_app
from campaign.core import migrations
from campaign.core.jobs import BackgroundJob, JobStatus
from campaign.extensions import db
from campaign.people.models import Supporter
from tests import factories
from tests.conftest import csrf_token, login
from tests.core.test_celery_worker import REDIS_URL, _redis_or_skip

ROOT = Path(__file__).resolve().parents[2]
SECRET = "import-worker-test-secret-0123456789abcdef"
ROWS = 300_000


def big_csv(rows: int) -> bytes:
    out = io.StringIO()
    out.write("Email,First name,Postcode\n")
    for i in range(rows):
        out.write(f"member{i}@example.org,Name{i % 97},E{i % 20 + 1} 1AB\n")
    return out.getvalue().encode()


class Workers:
    """The web app and the Celery worker processes that share its database and uploads."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.store = _redis_or_skip()
        self.store.flushdb()
        instance = tmp_path / "instance"
        database = f"sqlite:///{tmp_path / 'import.db'}"
        # The web app and the worker share the instance folder: uploads wait there.
        monkeypatch.setenv("CAMPAIGN_INSTANCE_PATH", str(instance))
        self.app = create_app(
            "testing",
            {"SQLALCHEMY_DATABASE_URI": database, "CELERY_BROKER_URL": REDIS_URL,
             "SECRET_KEY": SECRET, "MAIL_FILE_DIR": str(tmp_path / "mail"),
             "JOB_STALE_SECONDS": 2},
        )  # fmt: skip
        with self.app.app_context():
            migrations.upgrade("head")
        self.env = os.environ | {
            "CAMPAIGN_ENV": "development", "CAMPAIGN_INSTANCE_PATH": str(instance),
            "DATABASE_URL": database, "CELERY_BROKER_URL": REDIS_URL, "MAIL_BACKEND": "file",
            "MAIL_FILE_DIR": str(tmp_path / "mail"), "SECRET_KEY": SECRET,
            "ENCRYPTION_KEYS": "w1:" + "A" * 43, "PYTHONPATH": str(ROOT),
            "JOB_STALE_SECONDS": "2",
        }  # fmt: skip
        self.cwd = tmp_path
        self.processes: list[subprocess.Popen] = []

    def start(self) -> subprocess.Popen:
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "campaign.celery", "worker", "--pool=solo",
             "--without-gossip", "--without-mingle", "--loglevel=warning"],
            env=self.env, cwd=self.cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        self.processes.append(worker)
        deadline = time.monotonic() + 60
        while not self.app.extensions["celery"].control.ping(timeout=0.5):
            if worker.poll() is not None:
                pytest.fail(f"the Celery worker exited: {worker.stdout.read()}")
            if time.monotonic() > deadline:
                pytest.fail("the Celery worker did not start within 60 s")
        return worker

    def close(self) -> None:
        for worker in self.processes:
            if worker.poll() is None:
                worker.terminate()
                try:
                    worker.communicate(timeout=30)
                except subprocess.TimeoutExpired:
                    worker.kill()
                    worker.communicate()
        with self.app.app_context():
            db.engine.dispose()
        self.store.flushdb()


@pytest.fixture
def workers(tmp_path, monkeypatch):
    made = Workers(tmp_path, monkeypatch)
    yield made
    made.close()


@pytest.fixture
def worker_app(workers):
    workers.start()
    return workers.app


def _start_import(app, organiser, group_slug: str) -> tuple:
    client = app.test_client()
    login(client, organiser)
    response = client.post(
        f"/g/{group_slug}/people/import",
        data={"csrf_token": csrf_token(client), "file": (io.BytesIO(big_csv(ROWS)), "big.csv")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 302
    started = client.post(
        response.headers["Location"],
        data={"csrf_token": csrf_token(client), "column-0": "email", "column-1": "first_name",
              "column-2": "postcode"},
    )  # fmt: skip
    assert started.status_code == 302  # answered at once: the work is in the worker
    job_url = started.headers["Location"]
    return client, job_url, int(job_url.rsplit("/", 1)[1])


def _job(app, job_id: int) -> BackgroundJob:
    with app.app_context():
        return db.session.get(BackgroundJob, job_id)


@pytest.mark.slow
def test_another_groups_sign_up_succeeds_while_a_big_import_runs(worker_app):
    app = worker_app
    with app.app_context():
        organiser = factories.user()
        group = factories.group(organiser=organiser)
        other = factories.group()
        db.session.commit()
        group_slug, other_slug, other_id = group.slug, other.slug, other.id
    client, job_url, job_id = _start_import(app, organiser, group_slug)

    page = client.get(job_url).get_data(as_text=True)
    assert "Importing supporters" in page and 'http-equiv="refresh"' in page

    deadline = time.monotonic() + 120
    while _job(app, job_id).done == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    signups = overlapped = 0
    public = app.test_client()
    while _job(app, job_id).status != JobStatus.DONE and time.monotonic() < deadline:
        token = re.search(
            r'name="csrf_token"[^>]*value="([^"]+)"',
            public.get(f"/g/{other_slug}/subscribe").get_data(as_text=True),
        ).group(1)
        answer = public.post(
            f"/g/{other_slug}/subscribe",
            data={"csrf_token": token, "email": f"walk-in{signups}@example.org",
                  "first_name": "Sam", "consent": "y"},
        )  # fmt: skip
        assert answer.status_code == 302, answer.get_data(as_text=True)[:300]
        signups += 1
        # Still running once the sign-up was saved: the two overlapped.
        overlapped += _job(app, job_id).status == JobStatus.RUNNING
        if overlapped >= 5:
            break
    assert overlapped >= 1, "the import ended before any sign-up; make the file bigger"

    while _job(app, job_id).status not in (JobStatus.DONE, JobStatus.FAILED):
        assert time.monotonic() < deadline + 120, "the import did not finish"
        page = client.get(job_url).get_data(as_text=True)
        assert " of 300,000 rows" in page
        time.sleep(0.5)
    job = _job(app, job_id)
    assert job.status == JobStatus.DONE, job.error_summary
    assert job.result["created"] == ROWS and job.result["rejected_total"] == 0
    page = client.get(job_url).get_data(as_text=True)
    assert "300000 new supporters added" in page
    with app.app_context():
        walk_ins = db.session.scalars(
            select(Supporter.email).where(Supporter.group_id == other_id)
        ).all()
    assert len(walk_ins) == signups
    # The upload was deleted once imported.
    uploads = Path(app.instance_path) / "uploads"
    assert not (uploads / f"import-{job.group_id}-{job.params['token']}.csv").exists()


@pytest.mark.slow
def test_an_import_whose_worker_is_killed_carries_on_with_the_right_counts(workers):
    app = workers.app
    with app.app_context():
        organiser = factories.user()
        group = factories.group(organiser=organiser)
        db.session.commit()
        group_slug, group_id = group.slug, group.id
    first = workers.start()
    _client, _job_url, job_id = _start_import(app, organiser, group_slug)
    deadline = time.monotonic() + 120
    while _job(app, job_id).done < 20_000:
        assert time.monotonic() < deadline, "the import did not start"
        time.sleep(0.05)
    os.kill(first.pid, signal.SIGKILL)
    first.wait(timeout=10)
    at_kill = _job(app, job_id)
    assert at_kill.status == JobStatus.RUNNING and at_kill.done < ROWS
    workers.start()
    # What beat does every minute: the silent job (2 s here) is started again.
    while _job(app, job_id).status != JobStatus.DONE:
        assert time.monotonic() < deadline + 120, "the import did not resume"
        app.extensions["celery"].send_task("campaign.resume_stalled_jobs")
        time.sleep(3)
    job = _job(app, job_id)
    # Rows written before the kill are not counted again as "updated".
    assert job.result["created"] == ROWS and job.result["updated"] == 0
    with app.app_context():
        count = db.session.scalar(
            select(func.count()).select_from(Supporter).where(Supporter.group_id == group_id)
        )
    assert count == ROWS
