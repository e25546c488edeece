"""Deny by default, and a ``next`` parameter that can only lead back into the site."""

from __future__ import annotations

from urllib.parse import urlencode, urlsplit

import pytest

from tests.accounts.helpers import attempt_login, location_path, location_query
from tests.conftest import login, post
from tests.factories import PASSWORD

EXTERNAL_TARGETS = [
    "//evil.example/",
    "https://evil.example/",
    "http://evil.example/account",
    "///evil.example/",
    "/\\evil.example/",
    "\\\\evil.example/",
    "javascript:alert(1)",
    "evil.example",
    "https:evil.example",
    "/\t/evil.example/",
]


def _stays_on_site(location: str) -> bool:
    # Browsers read a backslash as a slash and drop tabs and newlines: judge it as they do.
    seen_by_browser = location.replace("\\", "/")
    for ch in "\t\r\n":
        seen_by_browser = seen_by_browser.replace(ch, "")
    parts = urlsplit(seen_by_browser)
    if parts.scheme or parts.netloc:
        return parts.netloc == "localhost"
    return seen_by_browser.startswith("/") and not seen_by_browser.startswith("//")


@pytest.mark.parametrize("path", ["/account", "/account/two-factor"])
def test_anonymous_visitors_are_sent_to_log_in(client, path):
    response = client.get(path)

    assert response.status_code == 302
    assert location_path(response) == "/login"
    assert location_query(response) == {"next": [path]}


def test_the_query_string_survives_the_trip_through_login(client, make):
    user = make.user()

    response = client.get("/account?tab=email")

    assert location_query(response) == {"next": ["/account?tab=email"]}
    after = attempt_login(client, user.email, PASSWORD, url=response.headers["Location"])
    assert after.headers["Location"] == "/account?tab=email"


@pytest.mark.parametrize(
    "path",
    [
        "/account/password",
        "/account/email",
        "/account/two-factor/disable",
        "/account/logout-everywhere",
        "/confirm/resend",
    ],
)
def test_anonymous_posts_to_private_actions_are_refused(client, path):
    response = post(client, path, {})

    assert response.status_code == 401


@pytest.mark.parametrize("path", ["/login", "/register", "/forgot-password", "/check-email"])
def test_the_public_account_pages_are_open(client, path):
    assert client.get(path).status_code == 200


def test_a_local_next_is_followed_after_login(client, make):
    user = make.user()

    response = attempt_login(client, user.email, PASSWORD, url="/login?next=/account")

    assert response.status_code == 302
    assert response.headers["Location"] == "/account"


@pytest.mark.parametrize("target", EXTERNAL_TARGETS)
def test_an_external_next_is_ignored_after_login(client, make, target):
    user = make.user()

    response = attempt_login(
        client, user.email, PASSWORD, url="/login?" + urlencode({"next": target})
    )

    assert response.status_code == 302
    assert _stays_on_site(response.headers["Location"]), response.headers["Location"]


@pytest.mark.parametrize("target", EXTERNAL_TARGETS)
def test_an_external_next_is_ignored_when_already_logged_in(client, make, target):
    user = make.user()
    login(client, user)

    response = client.get("/login?" + urlencode({"next": target}))

    assert response.status_code == 302
    assert _stays_on_site(response.headers["Location"]), response.headers["Location"]
