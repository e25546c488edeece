"""The whole production stack, for real, on this machine.

Two gunicorn processes on loopback ports (as two web hosts behind a proxy), two Celery
workers and beat on the local Redis, a fresh PostgreSQL database and an SMTP server.
Everything is driven through HTTP as people would: an account is registered and
confirmed from the emailed link, its group application is approved by an admin, an
action is published, a stranger signs up on the other web host, beat sends the reminder
at its time (its links must point at BASE_URL), a list send of 2,000 messages goes out
while one worker is killed with SIGKILL, and a supporter unsubscribes from the link in
the email. Every message must arrive exactly once, but for at most one repeat per kill
carrying the same Message-ID.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import redis
from aiosmtpd.controller import Controller

from tests.conftest import throwaway_database
from tests.smtp import free_port
from tests.stack.webclient import Page, WebClient

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
REDIS_URL = os.environ.get("TEST_STACK_REDIS_URL", "redis://127.0.0.1:6379/12")
LIMITS_URL = os.environ.get("TEST_STACK_LIMITS_URL", "redis://127.0.0.1:6379/11")
ADMIN = ("admin@example.org", "stack-admin-password-1")
ORGANISER = ("organiser@example.org", "stack-organiser-password-1")
LIST_SIZE = 2000
URL_RE = re.compile(r"https?://[^\s<>\"]+")


@dataclass
class Received:
    to: str
    subject: str
    message_id: str
    text: str

    @property
    def links(self) -> list[str]:
        return URL_RE.findall(self.text)


class Sink:
    """The relay: records every message, taking a moment over each."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.messages: list[Received] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        if self.delay:
            await asyncio.sleep(self.delay)
        message = message_from_bytes(envelope.original_content, policy=policy.default)
        part = message.get_body(preferencelist=("plain",))
        text = part.get_content() if part is not None else ""
        with self.lock:
            for recipient in envelope.rcpt_tos:
                self.messages.append(
                    Received(recipient, str(message["Subject"]), str(message["Message-ID"]), text)
                )
        return "250 Message accepted"

    def to(self, address: str, subject_contains: str = "") -> list[Received]:
        with self.lock:
            return [
                m for m in self.messages
                if m.to == address and subject_contains.lower() in m.subject.lower()
            ]  # fmt: skip


def wait_for(condition: Callable[[], object], timeout: float, what: str) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


class Stack:
    def __init__(self, tmp: Path, database_url: str) -> None:
        self.tmp = tmp
        self.processes: list[subprocess.Popen] = []
        self.redis = redis.Redis.from_url(REDIS_URL)
        try:
            self.redis.ping()
        except redis.exceptions.ConnectionError:
            if os.environ.get("CI"):
                pytest.fail(f"Redis is not reachable at {REDIS_URL}")
            pytest.skip(f"Redis is not reachable at {REDIS_URL}")
        self.redis.flushdb()
        redis.Redis.from_url(LIMITS_URL).flushdb()
        self.sink = Sink(delay=0.002)
        self.controller = Controller(self.sink, hostname="127.0.0.1", port=free_port())
        self.controller.start()
        self.ports = [free_port(), free_port()]
        self.bases = [f"http://127.0.0.1:{port}" for port in self.ports]
        self.database_url = database_url
        self.env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("CAMPAIGN_", "DATABASE_URL", "TEST_", "MAIL_", "CELERY_"))
        } | {
            "CAMPAIGN_ENV": "production",
            "CAMPAIGN_INSTANCE_PATH": str(tmp / "instance"),
            "UPLOADS_DIR": str(tmp / "uploads"),
            "DATABASE_URL": database_url,
            "SECRET_KEY": "stack-test-secret-" + "s" * 40,
            "ENCRYPTION_KEYS": "st1:" + "A" * 43,
            # Links in mail point at the first web host, as they would at the proxy.
            "BASE_URL": self.bases[0],
            "TRUSTED_PROXY_HOPS": "0",
            "CELERY_BROKER_URL": REDIS_URL,
            "RATELIMIT_STORAGE_URI": LIMITS_URL,
            "WEB_CONCURRENCY": "2",
            "SESSION_COOKIE_SECURE": "0",
            "SEND_HSTS": "0",
            "REQUEST_LOGS": "0",
            "MAIL_BACKEND": "smtp",
            "MAIL_SERVER": "127.0.0.1",
            "MAIL_PORT": str(self.controller.port),
            "MAIL_DEFAULT_SENDER": "Campaign <noreply@example.org>",
            "MAIL_LEASE_SECONDS": "5",
            "MAIL_BATCH_SIZE": "100",
            "BEAT_DELIVERY_SECONDS": "2",
            "BEAT_REMINDER_SECONDS": "3",
            "PYTHONPATH": str(ROOT),
        }

    # --- processes ------------------------------------------------------------------

    def flask(self, *args: str) -> str:
        done = subprocess.run(
            [str(BIN / "flask"), "--app", "campaign", *args], env=self.env, cwd=self.tmp,
            capture_output=True, text=True, timeout=180, check=False,
        )  # fmt: skip
        assert done.returncode == 0, f"flask {' '.join(args)}: {done.stderr}"
        return done.stdout

    def spawn(self, *command: str) -> subprocess.Popen:
        log = open(self.tmp / f"proc-{len(self.processes)}.log", "w")  # noqa: SIM115
        process = subprocess.Popen(
            command, env=self.env, cwd=self.tmp, stdout=log, stderr=subprocess.STDOUT
        )
        self.processes.append(process)
        return process

    def start_web(self) -> None:
        for port in self.ports:
            self.spawn(str(BIN / "gunicorn"), "--workers", "2", "--bind", f"127.0.0.1:{port}",
                       "--timeout", "60", "campaign.wsgi:app")  # fmt: skip

        def answers(base: str) -> bool:
            try:
                return WebClient().get(f"{base}/healthz").status == 200
            except OSError:
                return False

        for base in self.bases:
            wait_for(lambda base=base: answers(base), 60, f"gunicorn at {base}")

    def start_worker(self) -> subprocess.Popen:
        return self.spawn(str(BIN / "celery"), "-A", "campaign.celery", "worker",
                          "--pool=solo", "--without-gossip", "--without-mingle",
                          "--loglevel=warning")  # fmt: skip

    def start_beat(self) -> None:
        self.spawn(str(BIN / "celery"), "-A", "campaign.celery", "beat", "--loglevel=warning",
                   f"--schedule={self.tmp / 'beat-schedule'}")  # fmt: skip

    def logs(self) -> str:
        return "\n".join(
            f"--- {path.name}\n{path.read_text()[-3000:]}"
            for path in sorted(self.tmp.glob("proc-*.log"))
        )

    def close(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.controller.stop()
        self.redis.flushdb()

    # --- the site, in-process, only to prepare data nobody types in ---------------------

    def in_app(self, work: Callable[[], object]) -> object:
        from campaign import create_app
        from campaign.extensions import db

        # The settings classes read the environment once, at import: pass them in.
        app = create_app("testing", {
            "SQLALCHEMY_DATABASE_URI": self.database_url,
            "SECRET_KEY": self.env["SECRET_KEY"],
            "ENCRYPTION_KEYS": self.env["ENCRYPTION_KEYS"],
            "BASE_URL": self.env["BASE_URL"],
        })  # fmt: skip
        with app.app_context():
            try:
                return work()
            finally:
                db.session.close()
                db.engine.dispose()


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with throwaway_database("postgresql", tmp_path) as url:
        made = Stack(tmp_path, url)
        try:
            yield made
        except BaseException:
            print(made.logs())
            raise
        finally:
            made.close()


def log_in(client: WebClient, base: str, email: str, password: str) -> Page:
    page = client.submit(client.get(f"{base}/login"), "Log in",
                         {"email": email, "password": password})  # fmt: skip
    assert "You are logged in" in page.text(), page.text()[:500]
    return page


def add_subscribers(stack: Stack, slug: str, count: int) -> None:
    """People who signed a paper sheet at a stall: the organiser's list, typed in."""

    def work() -> None:
        from sqlalchemy import select

        from campaign.core.models import utcnow
        from campaign.extensions import db
        from campaign.groups.models import Group
        from campaign.people.models import ConsentAction, ConsentMethod, UpdatesStatus
        from campaign.people.services import record_consent, updates_wording, upsert_supporter

        group = db.session.scalar(select(Group).where(Group.slug == slug))
        for n in range(count):
            supporter, _ = upsert_supporter(
                group, f"list{n:05d}@example.net", first_name=f"Person{n}", source="stall"
            )
            supporter.updates_status = UpdatesStatus.SUBSCRIBED
            supporter.updates_confirmed_at = utcnow()
            record_consent(
                supporter, ConsentAction.GRANTED, ConsentMethod.IN_PERSON,
                wording=updates_wording(group), detail="sign-up sheet at the stall",
            )  # fmt: skip
        db.session.commit()

    stack.in_app(work)


def test_the_production_stack_end_to_end(stack: Stack) -> None:
    web1, web2 = stack.bases
    stack.flask("db", "upgrade")
    stack.flask("create-admin", ADMIN[0], "--password", ADMIN[1])
    stack.start_web()
    workers = [stack.start_worker(), stack.start_worker()]
    stack.start_beat()

    # 1. Someone registers on one web host and confirms from the emailed link.
    organiser = WebClient()
    page = organiser.submit(organiser.get(f"{web1}/register"), "Create account", {
        "display_name": "Sam", "email": ORGANISER[0],
        "password": ORGANISER[1], "password_again": ORGANISER[1],
    })  # fmt: skip
    assert page.status == 200, page.text()[:500]
    confirm = wait_for(lambda: stack.sink.to(ORGANISER[0], "confirm"), 60, "confirmation")[0]
    link = next(url for url in confirm.links if "/confirm/" in url)
    assert link.startswith(web1 + "/")
    page = organiser.submit(organiser.get(link), "Confirm my address", base=web2)
    assert "confirmed" in page.text().lower()

    # 2. They apply for a group; the admin approves it on the other host.
    log_in(organiser, web2, *ORGANISER)
    page = organiser.submit(organiser.get(f"{web2}/groups/apply"), "Send the application", {
        "name": "Eastside Health Justice", "area": "Eastside",
        "description": "Against charging at Eastside General.",
        "contact_email": "eastside@example.org",
    })  # fmt: skip
    assert page.status == 200, page.text()[:500]
    admin = WebClient()
    log_in(admin, web1, *ADMIN)
    page = admin.submit(admin.get(f"{web1}/admin/groups"), "Approve")
    assert "approved" in page.text().lower(), page.text()[:800]
    approved = wait_for(lambda: stack.sink.to(ORGANISER[0], "approved"), 60, "approval mail")
    slug = re.search(r"/g/([a-z0-9-]+)", " ".join(approved[0].links)).group(1)

    # 3. The organiser publishes an action two hours from now (reminder: 24 hours before).
    starts = datetime.now(ZoneInfo("Europe/London")).replace(second=0, microsecond=0)
    starts += timedelta(hours=2)
    page = organiser.submit(organiser.get(f"{web1}/g/{slug}/manage/actions/new"), "Save draft", {
        "title": "Vigil at Eastside General", "kind": "protest",
        "description": "Bring a candle.", "start_date": f"{starts:%Y-%m-%d}",
        "start_time": f"{starts:%H:%M}", "end_date": f"{starts + timedelta(hours=1):%Y-%m-%d}",
        "end_time": f"{starts + timedelta(hours=1):%H:%M}", "place_name": "Main entrance",
        "area": "Eastside", "place_public": "y", "capacity": "50", "reminder_hours": "24",
    })  # fmt: skip
    assert page.status == 200, page.text()[:800]
    page = organiser.submit(page, "Publish")
    action_url = re.search(rf"/g/{slug}/actions/\d+", page.html)
    action_path = action_url.group(0) if action_url else _first_action_path(organiser, web1, slug)

    # 4. A stranger signs up on the second host; beat sends the reminder at its time.
    stranger = WebClient()
    page = stranger.submit(stranger.get(f"{web2}{action_path}"), "Sign me up", {
        "name": "Ade", "email": "ade@example.net",
    })  # fmt: skip
    assert page.status == 200, page.text()[:800]
    wait_for(lambda: stack.sink.to("ade@example.net", "signed up"), 60, "the sign-up confirmation")
    reminder = wait_for(lambda: stack.sink.to("ade@example.net", "reminder"), 90, "reminder")
    assert len(reminder) == 1
    assert reminder[0].links and all(url.startswith(web1 + "/") for url in reminder[0].links)
    assert stranger.get(reminder[0].links[0]).status == 200

    # 5. A list send of 2,000 messages; one worker is killed in the middle of it.
    add_subscribers(stack, slug, LIST_SIZE)
    compose = organiser.get(f"{web1}/g/{slug}/mailings/new")
    page = organiser.submit(compose, "Save draft and preview", {
        "subject": "Eastside needs you", "body": "Hello {{first_name}}, come to the vigil.",
    })  # fmt: skip
    assert page.status == 200, page.text()[:800]
    page = organiser.submit(page, "Send or schedule", {"when": "now"})
    if page.status == 200 and "people now?" in page.text():  # the confirmation step
        page = organiser.submit(page, "Send")
    assert page.status == 200, page.text()[:800]

    def list_mail() -> list[Received]:
        with stack.sink.lock:
            return [m for m in stack.sink.messages if m.to.startswith("list")]

    wait_for(lambda: len(list_mail()) >= LIST_SIZE // 4, 120, "a quarter of the send")
    os.kill(workers[0].pid, signal.SIGKILL)
    workers[0].wait(timeout=10)
    kills = 1
    assert len(list_mail()) < LIST_SIZE, "the send finished before the kill"
    stack.start_worker()
    wait_for(lambda: len({m.to for m in list_mail()}) >= LIST_SIZE, 240, "the whole list")
    time.sleep(2)  # anything still in flight lands
    per_recipient = Counter(m.to for m in list_mail())
    assert len(per_recipient) == LIST_SIZE
    repeats = [address for address, n in per_recipient.items() if n > 1]
    assert len(repeats) <= kills
    for address in repeats:
        assert per_recipient[address] == 2
        assert len({m.message_id for m in list_mail() if m.to == address}) == 1

    # 6. One of them unsubscribes from the link in their email.
    mail = stack.sink.to("list00007@example.net")[0]
    unsubscribe = next(url for url in mail.links if "/unsubscribe/" in url)
    assert unsubscribe.startswith(web1 + "/")
    reader = WebClient()
    page = reader.submit(reader.get(unsubscribe), "Unsubscribe", base=web2)
    assert page.status == 200 and "unsubscribed" in page.text().lower(), page.text()[:800]

    def status() -> str:
        from sqlalchemy import select

        from campaign.extensions import db
        from campaign.people.models import Supporter

        return db.session.scalar(
            select(Supporter.updates_status).where(Supporter.email == "list00007@example.net")
        )

    assert str(stack.in_app(status)).lower().endswith("unsubscribed")
    # Everything else went exactly once: no account or action mail was repeated.
    others = Counter((m.to, m.subject) for m in stack.sink.messages if not m.to.startswith("list"))
    assert max(others.values()) == 1, others


def _first_action_path(client: WebClient, base: str, slug: str) -> str:
    page = client.get(f"{base}/g/{slug}/actions")
    match = re.search(rf"/g/{slug}/actions/\d+", page.html)
    assert match, page.text()[:800]
    return match.group(0)
