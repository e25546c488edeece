"""Fixtures: one app and schema per session, each test isolated in a rolled-back transaction.

The suite runs on SQLite by default and on PostgreSQL when TEST_DATABASE_URL is set.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

import pytest
import sqlalchemy as sa
from flask import Flask, g, has_app_context
from flask.testing import FlaskClient
from sqlalchemy import select

from campaign import create_app
from campaign.core.outbox import OutboxMessage
from campaign.extensions import db, limiter
from campaign.models import metadata
from tests import factories
from tests.smtp import smtp_sink  # noqa: F401 - a fixture for every test folder

CSRF_RE = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
URL_RE = re.compile(r"https?://[^\s<>\"]+")


class Client(FlaskClient):
    """A test client whose every request runs in an app context of its own, as in production.

    Tests keep an app context pushed (for factories and assertions). A request given that
    context would share its ``g`` and, worse, its database session: a view that forgot to
    commit would leave its changes visible to the test. So each request gets a new app
    context, hence a new session, closed (its uncommitted work rolled back) when the
    request ends; afterwards the test's own sessions are expired so they read back what
    was really committed.
    """

    def open(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN201
        outer = g._get_current_object() if has_app_context() else None
        try:
            with self.application.app_context():
                return super().open(*args, **kwargs)
        finally:
            if outer is not None:
                for open_session in vars(outer).get("_sqlalchemy_sessions", {}).values():
                    open_session.expire_all()


@contextmanager
def throwaway_database(kind: str, tmp_dir: Path) -> Iterator[str]:
    """An empty database of its own: a SQLite file, or a new PostgreSQL database on the
    TEST_DATABASE_URL server (dropped afterwards). Skips PostgreSQL when there is none."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp_dir / 'throwaway.db'}"
        return
    server = os.environ.get("TEST_DATABASE_URL", "")
    if not server.startswith("postgresql"):
        pytest.skip("TEST_DATABASE_URL is not a PostgreSQL URL")
    name = f"campaign_throwaway_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield sa.make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def database_url(tmp_dir: Path) -> str:
    return os.environ.get("TEST_DATABASE_URL") or f"sqlite:///{tmp_dir / 'test.db'}"


@pytest.fixture(scope="session")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    tmp = tmp_path_factory.mktemp("campaign")
    app = create_app(
        "testing",
        {
            "SQLALCHEMY_DATABASE_URI": database_url(tmp),
            "MAIL_FILE_DIR": str(tmp / "mail"),
        },
    )
    app.test_client_class = Client
    with app.app_context():
        metadata.drop_all(db.engine)
        metadata.create_all(db.engine)
    yield app
    with app.app_context():
        metadata.drop_all(db.engine)
        db.engine.dispose()


@pytest.fixture(autouse=True)
def limiter_as_configured(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the shared rate limiter as the testing settings say (off).

    ``limiter`` is one module-level object: any other ``create_app()`` in the session
    (a production app built by a settings test, say) re-runs ``init_app`` and would
    switch it on for every app. Tests of the limits switch it on themselves.
    """
    monkeypatch.setattr(limiter, "enabled", app.config["RATELIMIT_ENABLED"])


@contextmanager
def rolled_back_transaction() -> Iterator[None]:
    """Bind every session to one connection inside a transaction that is rolled back.

    Sessions join it with a SAVEPOINT, so the code under test can commit and roll back
    as usual. (Binding the session to the connection matters: a session that opens its
    own connection adopts an outer transaction and would really commit it.)
    """
    connection = db.engine.connect()
    outer = connection.begin()
    try:
        with mock.patch.dict(
            db.sessionmaker.kw, {"bind": connection, "join_transaction_mode": "create_savepoint"}
        ):
            yield
            for open_session in g.pop("_sqlalchemy_sessions", {}).values():
                open_session.close()
    finally:
        outer.rollback()
        connection.close()


@pytest.fixture
def isolated(app: Flask) -> Iterator[None]:
    """Everything a test writes, commits included, is rolled back at its end."""
    with app.app_context(), rolled_back_transaction():
        yield


@pytest.fixture
def session(app: Flask, isolated: None) -> Iterator:
    with app.test_request_context():
        yield db.session


@pytest.fixture
def client(app: Flask, isolated: None) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def make(isolated: None):
    """Factories for test data, flushed into the test's transaction."""
    return factories


def csrf_token(client: FlaskClient) -> str:
    """A valid CSRF token for this client's session, read from a real form."""
    for path in ("/login", "/account"):
        response = client.get(path)
        if response.status_code == 200:
            match = CSRF_RE.search(response.get_data(as_text=True))
            if match:
                return match.group(1)
    raise AssertionError("no page with a CSRF token found")


def post(client: FlaskClient, url: str, data: dict | None = None, **kwargs):
    """POST a form with a valid CSRF token."""
    payload = dict(data or {})
    payload.setdefault("csrf_token", csrf_token(client))
    return client.post(url, data=payload, **kwargs)


def login(client: FlaskClient, user, password: str = factories.PASSWORD):
    response = post(client, "/login", {"email": user.email, "password": password})
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    return response


def mail_to(address: str) -> list[OutboxMessage]:
    """Mail queued to an address in this test, oldest first."""
    return list(
        db.session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.to_addr == address.lower())
            .order_by(OutboxMessage.id)
        )
    )


def links_in(message: OutboxMessage) -> list[str]:
    return URL_RE.findall(message.text_body)


def path_of(url: str) -> str:
    return "/" + url.split("://", 1)[1].split("/", 1)[1]
