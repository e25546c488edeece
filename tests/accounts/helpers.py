"""Helpers shared by the account tests: forms, mail lookups and link tokens."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pyotp
from flask.testing import FlaskClient
from sqlalchemy import func, select

from campaign.accounts import services
from campaign.accounts.models import LoginThrottle, User, UserSession, token_hash
from campaign.core.audit import AuditEvent
from campaign.core.outbox import OutboxMessage
from campaign.extensions import db
from tests.conftest import links_in, mail_to, path_of, post

# Distinctive enough that finding it anywhere it should not be is never a coincidence.
SECRET = "Plumtree-Quasar-8814-Lantern"
OTHER_SECRET = "Velvet-Harbour-2290-Compass"

LOGIN_FAILED = "That email and password did not match"
CSRF_VALUE_RE = re.compile(r'(name="csrf_token"[^>]*value=")[^"]+(")')


def register(
    client: FlaskClient,
    email: str = "ana@example.org",
    password: str = SECRET,
    name: str = "",
    password_again: str | None = None,
):
    return post(
        client,
        "/register",
        {
            "display_name": name,
            "email": email,
            "password": password,
            "password_again": password if password_again is None else password_again,
        },
    )


def attempt_login(
    client: FlaskClient, email: str, password: str, url: str = "/login", **extra: str
):
    return post(client, url, {"email": email, "password": password, **extra})


def only_mail(address: str, template: str) -> OutboxMessage:
    """The one message with this template queued to the address."""
    messages = [m for m in mail_to(address) if m.template == template]
    assert len(messages) == 1, [(m.template, m.to_addr) for m in mail_to(address)]
    return messages[0]


def link_path(message: OutboxMessage, prefix: str) -> str:
    """The path of the one link in the message whose path starts with ``prefix``."""
    paths = [path_of(url) for url in links_in(message) if path_of(url).startswith(prefix)]
    assert len(paths) == 1, links_in(message)
    assert paths[0] in (message.html_body or ""), "the HTML part carries the same link"
    return paths[0]


def outbox_count() -> int:
    return db.session.scalar(select(func.count(OutboxMessage.id)))


def users_with_email(email: str) -> list[User]:
    return list(db.session.scalars(select(User).where(func.lower(User.email) == email.lower())))


def audit_events(event: str, user_id: int | None = None) -> list[AuditEvent]:
    query = select(AuditEvent).where(AuditEvent.event == event).order_by(AuditEvent.id)
    if user_id is not None:
        query = query.where(AuditEvent.subject_user_id == user_id)
    return list(db.session.scalars(query))


def is_logged_in(client: FlaskClient) -> bool:
    """Whether the client's cookies authenticate it (the settings page is login-only)."""
    response = client.get("/account")
    if response.status_code == 200:
        return True
    assert response.status_code == 302
    assert urlsplit(response.headers["Location"]).path == "/login"
    return False


def location_path(response) -> str:
    return urlsplit(response.headers["Location"]).path


def location_query(response) -> dict[str, list[str]]:
    return parse_qs(urlsplit(response.headers["Location"]).query)


def flashes(client: FlaskClient) -> list[str]:
    """The flash messages waiting in the client's session (read without consuming them)."""
    with client.session_transaction() as session:
        return [message for _category, message in session.get("_flashes", [])]


def without_csrf(html: str) -> str:
    return CSRF_VALUE_RE.sub(r"\1TOKEN\2", html)


def turn_on_two_factor(user: User) -> pyotp.TOTP:
    """Give a user an active TOTP secret without spending a code (test set-up)."""
    services.begin_totp_setup(user)
    user.totp_enabled = True
    db.session.commit()
    return pyotp.TOTP(services.totp_secret_for_display(user))


def live_sessions(user: User) -> list[UserSession]:
    """The user's session rows that have not been revoked, oldest first."""
    return list(
        db.session.scalars(
            select(UserSession)
            .where(UserSession.user_id == user.id, UserSession.revoked_at.is_(None))
            .order_by(UserSession.id)
        )
    )


def session_key(client: FlaskClient) -> str | None:
    """The session token Flask-Login keeps in the client's session cookie."""
    with client.session_transaction() as session:
        return session.get("_user_id")


def session_row(client: FlaskClient) -> UserSession | None:
    key = session_key(client)
    if key is None:
        return None
    return db.session.scalar(select(UserSession).where(UserSession.token_hash == token_hash(key)))


def throttles(user: User) -> list[LoginThrottle]:
    return list(db.session.scalars(select(LoginThrottle).where(LoginThrottle.user_id == user.id)))


def token_of(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[1]
