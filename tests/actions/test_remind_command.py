"""Reminders as they run in production: no request, links from BASE_URL.

``flask --app campaign actions remind`` runs as a real subprocess with the production
settings, and the beat task ``campaign.send_action_reminders`` runs in a real Celery
worker on Redis; both deliver the reminder over SMTP to a real sink, and every link
in it (text, HTML and the calendar) starts with BASE_URL and opens a page. Before the
link builder they both died with "Unable to build URLs outside an active request".
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from flask import Flask
from sqlalchemy import select

from campaign import create_app
from campaign.actions.models import Action, ActionSignup, ActionStatus
from campaign.core import migrations
from campaign.core.models import utcnow
from campaign.extensions import db
from tests import factories
from tests.conftest import throwaway_database
from tests.core.test_celery_worker import REDIS_URL, _redis_or_skip
from tests.smtp import RecordingHandler, free_port

ROOT = Path(__file__).resolve().parents[2]
BASE_URL = "https://campaign.example.org"
SECRET = "remind-test-secret-key-0123456789abcdef"
KEYS = "r1:" + "A" * 43
ATTENDEE = "ada@example.org"
LINK_RE = re.compile(r"https?://[^\s<>\"']+")


@dataclass
class Prepared:
    app: Flask
    database: str
    sink: RecordingHandler
    env: dict[str, str]
    action_id: int
    tmp: Path


@pytest.fixture(params=["sqlite", "postgresql"])
def prepared(request, tmp_path) -> Iterator[Prepared]:
    """A migrated throwaway database with one confirmed place at an action in two hours
    (reminder due: 24 hours before), a real SMTP sink, and the production environment."""
    with throwaway_database(request.param, tmp_path) as database:
        app = create_app(
            "testing",
            {"SQLALCHEMY_DATABASE_URI": database, "BASE_URL": BASE_URL, "SECRET_KEY": SECRET,
             "ENCRYPTION_KEYS": KEYS, "MAIL_FILE_DIR": str(tmp_path / "mail")},
        )  # fmt: skip
        with app.app_context():
            migrations.upgrade("head")
            group = factories.group("Riverside Health Justice")
            action = Action(group_id=group.id, title="Visit the Trust board", capacity=10,
                            starts_at=utcnow() + timedelta(hours=2),
                            ends_at=utcnow() + timedelta(hours=4),
                            status=ActionStatus.PUBLISHED, place_name="Board room",
                            place_public=False, reminder_hours=24)  # fmt: skip
            db.session.add(action)
            db.session.flush()
            db.session.add(ActionSignup(action_id=action.id, group_id=group.id, email=ATTENDEE))
            db.session.commit()
            action_id = action.id
        sink = RecordingHandler()
        controller = Controller(sink, hostname="127.0.0.1", port=free_port())
        controller.start()
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("CELERY_", "MAIL_", "TRUSTED_HOSTS", "FLASK_"))
        } | {
            "CAMPAIGN_ENV": "production",
            "CAMPAIGN_INSTANCE_PATH": str(tmp_path / "instance"),
            "DATABASE_URL": database,
            "SECRET_KEY": SECRET,
            "ENCRYPTION_KEYS": KEYS,
            "BASE_URL": BASE_URL,
            "MAIL_BACKEND": "smtp",
            "MAIL_SERVER": "127.0.0.1",
            "MAIL_PORT": str(controller.port),
            "MAIL_DEFAULT_SENDER": "Campaign <noreply@campaign.example.org>",
            # Production needs a broker; no worker listens here, so the commands below
            # deliver (`flask outbox deliver`), as an operator would run them.
            "CELERY_BROKER_URL": REDIS_URL,
            "PYTHONPATH": str(ROOT),
        }
        try:
            yield Prepared(app, database, sink, env, action_id, tmp_path)
        finally:
            controller.stop()
            with app.app_context():
                db.engine.dispose()


def _parts(raw: bytes) -> dict[str, str]:
    message = message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return {part.get_content_type(): part.get_content() for part in message.walk()
            if not part.is_multipart()}  # fmt: skip


def _assert_reminder_links_work(prepared: Prepared, raw: bytes) -> None:
    parts = _parts(raw)
    assert {"text/plain", "text/html", "text/calendar"} <= set(parts)
    assert "Visit the Trust board" in parts["text/plain"]
    links = {
        kind: {link.rstrip(".,)") for link in LINK_RE.findall(body)} for kind, body in parts.items()
    }
    for kind in ("text/plain", "text/html", "text/calendar"):
        assert links[kind], f"no link in the {kind} part"
    every = set().union(*links.values())
    assert all(link.startswith(BASE_URL + "/") for link in every), every
    assert "campaign.example.org" in parts["text/calendar"].split("UID:", 1)[1].split()[0]
    client = prepared.app.test_client()
    for link in sorted(every):
        response = client.get(link[len(BASE_URL) :], base_url=BASE_URL)
        assert response.status_code == 200, (link, response.status_code)
    manage = next(link for link in links["text/plain"] if "/signup/" in link)
    page = client.get(manage[len(BASE_URL) :], base_url=BASE_URL).get_data(as_text=True)
    assert "Visit the Trust board" in page and "<form" in page  # one button that POSTs


def _reminded(prepared: Prepared) -> bool:
    with prepared.app.app_context():
        return db.session.scalar(
            select(ActionSignup.reminded_at).where(ActionSignup.email == ATTENDEE)
        ) is not None  # fmt: skip


def _flask(prepared: Prepared, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "flask", "--app", "campaign", *args],
        env=prepared.env, cwd=prepared.tmp, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def _remind_command(prepared: Prepared) -> subprocess.CompletedProcess:
    reminded = _flask(prepared, "actions", "remind")
    delivered = _flask(prepared, "outbox", "deliver")
    assert delivered.returncode == 0, delivered.stderr
    return reminded


def test_the_remind_command_delivers_links_built_from_base_url(prepared):
    result = _remind_command(prepared)
    assert result.returncode == 0, result.stderr
    assert "1 reminder(s) queued." in result.stdout
    assert _reminded(prepared)
    [(recipients, raw)] = prepared.sink.messages
    assert recipients == [ATTENDEE]
    _assert_reminder_links_work(prepared, raw)

    again = _remind_command(prepared)  # the next run finds nothing due: one reminder each
    assert again.returncode == 0, again.stderr
    assert "0 reminder(s) queued." in again.stdout
    assert len(prepared.sink.messages) == 1


@pytest.mark.slow
def test_the_beat_task_in_a_real_worker_delivers_links_built_from_base_url(prepared):
    redis_client = _redis_or_skip()
    redis_client.flushdb()
    env = prepared.env | {"CELERY_BROKER_URL": REDIS_URL}
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "campaign.celery", "worker", "--pool=solo",
         "--without-gossip", "--without-mingle", "--loglevel=warning"],
        env=env, cwd=prepared.tmp, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    sender = create_app(
        "testing",
        {"SQLALCHEMY_DATABASE_URI": prepared.database, "CELERY_BROKER_URL": REDIS_URL,
         "SECRET_KEY": SECRET, "ENCRYPTION_KEYS": KEYS, "BASE_URL": BASE_URL,
         "MAIL_FILE_DIR": str(prepared.tmp / "mail")},
    )  # fmt: skip
    celery = sender.extensions["celery"]
    try:
        deadline = time.monotonic() + 60
        while not celery.control.ping(timeout=0.5):
            if worker.poll() is not None:
                pytest.fail(f"the Celery worker exited: {worker.stdout.read()}")
            if time.monotonic() > deadline:
                pytest.fail("the Celery worker did not start within 60 s")
        celery.send_task("campaign.send_action_reminders")  # what beat does
        deadline = time.monotonic() + 60
        while not prepared.sink.messages and time.monotonic() < deadline:
            if worker.poll() is not None:
                pytest.fail(f"the Celery worker exited: {worker.stdout.read()}")
            time.sleep(0.2)
        assert prepared.sink.messages, "no reminder arrived within 60 s"
        [(recipients, raw)] = prepared.sink.messages
        assert recipients == [ATTENDEE]
        assert _reminded(prepared)
        _assert_reminder_links_work(prepared, raw)
    finally:
        worker.terminate()
        try:
            output, _ = worker.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
            output, _ = worker.communicate()
        with sender.app_context():
            db.engine.dispose()
        redis_client.flushdb()
    assert "Traceback" not in output, output
