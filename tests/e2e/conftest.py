"""Browser fixtures: a live server on its own migrated database, Chromium, mail, screenshots.

These tests use none of the main suite's fixtures: the app under test runs in a server
thread and commits for real, so it gets its own SQLite file and mail directory, and the
schema is built by the real migrations (as an operator would), not ``create_all``.

Chromium is Debian's (``apt-get install chromium``); Playwright's own browser downloads
are never used. ``CAMPAIGN_CHROMIUM`` points at another binary; ``CAMPAIGN_REQUIRE_BROWSER=1``
(set in CI) turns a missing browser into a failure instead of a skip.
"""

from __future__ import annotations

import os
import re
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any, TypeVar

import pytest
from flask import Flask
from werkzeug.serving import BaseWSGIServer, make_server

from campaign import create_app

E2E_DIR = Path(__file__).resolve().parent
SCREENSHOT_DIR = E2E_DIR / "screenshots"
DEFAULT_CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
MOBILE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
URL_RE = re.compile(r"https?://[^\s<>\"')]+")
# Console noise that is not a page problem this suite looks for (none at present).
IGNORED_CONSOLE_ERRORS: list[re.Pattern[str]] = []
T = TypeVar("T")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test under tests/e2e is an ``e2e`` test, so ``-m "not e2e"`` leaves them out."""
    for item in items:
        if E2E_DIR in Path(item.path).parents:
            item.add_marker(pytest.mark.e2e)


# --- the live server ---------------------------------------------------------------------


@dataclass
class LiveServer:
    url: str
    app: Flask
    mail_dir: Path
    mailbox: Mailbox

    def run(self, work: Callable[[], T]) -> T:
        """Run ``work`` inside the live app's context, e.g. to set up data directly."""
        return in_app_context(self.app, work)


def off_the_test_thread(work: Callable[[], T]) -> T:
    """Run ``work`` on a worker thread and hand back its result (or raise its error).

    Playwright's sync API keeps an asyncio loop running on the test's thread, and popping
    a Flask app context there fails: Flask runs Flask-SQLAlchemy-Lite's async teardown
    through asgiref's ``async_to_sync``, which refuses to run beside a running loop. So
    everything that pushes an app context (``create_app`` included) runs elsewhere.
    """
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = work()
        except BaseException as exc:  # noqa: BLE001 - re-raised on the test's thread
            outcome["error"] = exc

    thread = threading.Thread(target=target, name="e2e-setup")
    thread.start()
    thread.join(timeout=60)
    if thread.is_alive():
        raise TimeoutError("setup work for the live app did not finish in 60 s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def in_app_context(app: Flask, work: Callable[[], T]) -> T:
    """Run ``work`` inside ``app``'s context, off the test's thread."""

    def with_context() -> T:
        with app.app_context():
            return work()

    return off_the_test_thread(with_context)


def _build_app(tmp: Path) -> Flask:
    """A testing app on its own SQLite file and mail folder, migrated to head."""
    from campaign.core import migrations

    app = create_app(
        "testing",
        {
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp / 'e2e.db'}",
            "MAIL_FILE_DIR": str(tmp / "mail"),
            "MAIL_BACKEND": "file",
        },
    )
    with app.app_context():
        migrations.upgrade("head")
    return app


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The app on 127.0.0.1:<free port>, on a database built by ``migrations.upgrade``."""
    from campaign.extensions import db

    tmp = tmp_path_factory.mktemp("campaign-e2e")
    app = off_the_test_thread(lambda: _build_app(tmp))
    mail_dir = Path(app.config["MAIL_FILE_DIR"])

    server: BaseWSGIServer = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="e2e-live-server", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}"
    app.config["BASE_URL"] = url  # mailed links lead back to this server (rule 13)
    try:
        yield LiveServer(url=url, app=app, mail_dir=mail_dir, mailbox=Mailbox(mail_dir))
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()
        in_app_context(app, lambda: db.engine.dispose())


# --- mail --------------------------------------------------------------------------------


@dataclass
class Mail:
    path: Path
    to: set[str]
    subject: str
    text: str

    @property
    def links(self) -> list[str]:
        return URL_RE.findall(self.text)

    @property
    def first_link(self) -> str:
        links = self.links
        assert links, f"no link in the mail {self.subject!r}:\n{self.text}"
        return links[0]


def _row_id(path: Path) -> int:
    """Files are ``<created stamp>-<outbox row id>.eml``; the row id orders them."""
    return int(path.stem.rpartition("-")[2])


def read_mail(path: Path) -> Mail:
    msg = message_from_bytes(path.read_bytes(), policy=policy.default)
    header = msg["To"]
    addresses = {a.addr_spec.lower() for a in header.addresses} if header else set()
    body = msg.get_body(preferencelist=("plain",))
    return Mail(
        path=path,
        to=addresses,
        subject=str(msg["Subject"] or ""),
        text=body.get_content() if body is not None else "",
    )


@dataclass
class Mailbox:
    """The .eml files the file transport writes: what each address would have received."""

    directory: Path

    def files(self) -> list[Path]:
        if not self.directory.is_dir():
            return []
        return sorted(self.directory.glob("*.eml"), key=_row_id)

    def mark(self) -> set[str]:
        """The names of the files present now; pass to ``latest(..., after=...)``."""
        return {path.name for path in self.files()}

    def latest(
        self,
        address: str,
        *,
        subject_contains: str | None = None,
        after: set[str] | None = None,
        timeout: float = 5.0,
    ) -> Mail:
        """The newest mail to ``address``, waiting up to ``timeout`` seconds for it.

        Delivery runs at the end of the request that queued the mail, so it can land a
        moment after the browser has the next page.
        """
        address = address.lower()
        deadline = time.monotonic() + timeout
        while True:
            for path in reversed(self.files()):
                if after is not None and path.name in after:
                    continue
                mail = read_mail(path)
                if address not in mail.to:
                    continue
                if subject_contains and subject_contains.lower() not in mail.subject.lower():
                    continue
                return mail
            if time.monotonic() >= deadline:
                summary = [f"{read_mail(p).to} {read_mail(p).subject!r}" for p in self.files()]
                raise AssertionError(
                    f"no mail to {address} (subject containing {subject_contains!r}) within "
                    f"{timeout}s; mail so far: {summary}"
                )
            time.sleep(0.1)

    def latest_link(self, address: str, **kwargs: Any) -> str:
        """The first http(s) URL in the newest mail to ``address``."""
        return self.latest(address, **kwargs).first_link


@pytest.fixture
def mailbox(live_server: LiveServer) -> Mailbox:
    return live_server.mailbox


# --- the browser -------------------------------------------------------------------------


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Debian's Chromium, headless, with nothing that calls home."""
    executable = os.environ.get("CAMPAIGN_CHROMIUM", DEFAULT_CHROMIUM)
    if not (os.path.isfile(executable) and os.access(executable, os.X_OK)):
        reason = (
            f"Debian chromium not installed: apt-get install chromium "
            f"(looked for {executable}; set CAMPAIGN_CHROMIUM to use another binary)"
        )
        if os.environ.get("CAMPAIGN_REQUIRE_BROWSER") == "1":
            pytest.fail(reason)
        pytest.skip(reason)

    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            chromium.close()


@dataclass
class PageLog:
    """What a page did that a test may want to assert on afterwards."""

    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    server_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def on_console(self, message: Any) -> None:
        if message.type != "error":
            return
        text = f"{message.text} ({message.location.get('url')})"
        if not any(pattern.search(text) for pattern in IGNORED_CONSOLE_ERRORS):
            self.console_errors.append(text)

    @property
    def problems(self) -> list[str]:
        return self.console_errors + self.page_errors + self.server_errors


@pytest.fixture
def new_page(browser: Any) -> Iterator[Callable[..., Any]]:
    """Open a page in a fresh context (own cookies); ``page.log`` records what happened."""
    contexts: list[Any] = []

    def open_page(viewport: dict[str, int] = MOBILE, **options: Any) -> Any:
        if viewport == MOBILE:
            options.setdefault("is_mobile", True)
            options.setdefault("has_touch", True)
        context = browser.new_context(viewport=viewport, locale="en-GB", **options)
        context.set_default_timeout(10_000)
        contexts.append(context)
        page = context.new_page()
        log = PageLog()
        page.on("request", lambda request: log.requests.append(request.url))
        page.on("console", log.on_console)
        page.on("pageerror", lambda exc: log.page_errors.append(str(exc)))
        page.on(
            "response",
            lambda response: (
                log.server_errors.append(f"{response.status} {response.url}")
                if response.status >= 500
                else None
            ),
        )
        page.log = log
        return page

    yield open_page
    for context in contexts:
        context.close()


@pytest.fixture
def page(new_page: Callable[..., Any]) -> Any:
    """A phone-sized page (390x844): the app is mobile first."""
    return new_page(MOBILE)


# --- screenshots -------------------------------------------------------------------------


class SidewaysScrollWarning(UserWarning):
    """A page is wider than the viewport: on a phone it scrolls sideways."""


class Screenshots:
    """``shot(page, "step")`` saves ``screenshots/<test>-<nn>-<step>.png`` (full page).

    It also warns (without failing) when the page scrolls sideways at that step, so a
    layout problem shows in the test summary next to the picture that shows it.
    """

    def __init__(self, test_name: str) -> None:
        self.prefix = re.sub(r"[^A-Za-z0-9_.-]+", "-", test_name).strip("-")
        self.count = 0
        self.paths: list[Path] = []
        SCREENSHOT_DIR.mkdir(exist_ok=True)
        for stale in SCREENSHOT_DIR.glob(f"{self.prefix}-[0-9][0-9]-*.png"):
            stale.unlink()

    def __call__(self, page: Any, step: str) -> Path:
        self.count += 1
        slug = re.sub(r"[^a-z0-9]+", "-", step.lower()).strip("-")
        path = SCREENSHOT_DIR / f"{self.prefix}-{self.count:02d}-{slug}.png"
        page.screenshot(path=str(path), full_page=True)
        self.paths.append(path)
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        if overflow > 0:
            warnings.warn(
                f"{path.name}: {page.url} scrolls sideways by {overflow}px",
                SidewaysScrollWarning,
                stacklevel=2,
            )
        return path


@pytest.fixture
def shot(request: pytest.FixtureRequest) -> Screenshots:
    return Screenshots(request.node.name)
