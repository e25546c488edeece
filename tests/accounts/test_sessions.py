"""Sessions that end: each login is a row, logout revokes it on the server, and the
account page lists the devices logged in with a way to log the others out."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from campaign import create_app
from campaign.accounts.models import UserSession
from campaign.core.models import utcnow
from campaign.core.text import local_time
from campaign.extensions import db
from tests.accounts.helpers import (
    attempt_login,
    audit_events,
    is_logged_in,
    live_sessions,
    location_path,
    session_row,
)
from tests.conftest import login, post
from tests.factories import PASSWORD

ROOT = Path(__file__).resolve().parents[2]
FIREFOX_ANDROID = "Mozilla/5.0 (Android 14; Mobile; rv:128.0) Gecko/128.0 Firefox/128.0"
CHROME_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0 Safari/537.36"
)


def _refused(app, **cookies: str) -> bool:
    """Whether a fresh browser holding only these cookies is sent to the login page."""
    browser = app.test_client()
    for name, value in cookies.items():
        browser.set_cookie(name, value)
    response = browser.get("/account")
    return response.status_code == 302 and location_path(response) == "/login"


def test_after_logout_the_old_session_cookie_is_refused(app, client, make):
    user = make.user("ana@example.org")
    login(client, user)
    old_session = client.get_cookie("session").value
    assert not _refused(app, session=old_session), "a copy works while the session lives"

    assert post(client, "/logout").status_code == 302

    assert _refused(app, session=old_session)
    assert live_sessions(user) == []


def test_after_logout_the_old_remember_cookie_alone_is_refused(app, client, make):
    user = make.user("ana@example.org")
    attempt_login(client, "ana@example.org", PASSWORD, remember="y")
    old_remember = client.get_cookie("remember_token").value
    assert not _refused(app, remember_token=old_remember), "it works until logout"

    assert post(client, "/logout").status_code == 302

    assert _refused(app, remember_token=old_remember)
    [row] = db.session.scalars(select(UserSession).where(UserSession.user_id == user.id))
    assert row.revoked_at is not None and row.remember


def test_logout_ends_only_that_session(app, make):
    user = make.user("ana@example.org")
    phone, laptop = app.test_client(), app.test_client()
    login(phone, user)
    login(laptop, user)

    post(phone, "/logout")

    assert not is_logged_in(phone)
    assert is_logged_in(laptop)
    assert len(live_sessions(user)) == 1


def test_each_login_is_its_own_session(app, make):
    user = make.user("ana@example.org")
    first, second = app.test_client(), app.test_client()
    login(first, user)
    login(second, user)

    rows = live_sessions(user)
    assert len(rows) == 2
    assert session_row(first).id != session_row(second).id
    # The database keeps a hash of the token, not the token the cookie carries.
    for browser, row in ((first, session_row(first)), (second, session_row(second))):
        with browser.session_transaction() as session:
            assert session["_user_id"] not in row.token_hash


def test_the_account_page_lists_the_devices(app, make):
    user = make.user("ana@example.org")
    phone, laptop = app.test_client(), app.test_client()
    phone.environ_base["HTTP_USER_AGENT"] = FIREFOX_ANDROID
    laptop.environ_base["HTTP_USER_AGENT"] = CHROME_WINDOWS
    attempt_login(phone, "ana@example.org", PASSWORD, remember="y")
    login(laptop, user)
    phone_row = session_row(phone)

    page = laptop.get("/account").get_data(as_text=True)

    assert "Firefox on Android" in page
    assert "Chrome on Windows (this device)" not in page  # markup between the two
    assert "Chrome on Windows <strong>(this device)</strong>" in page
    assert "Firefox on Android <strong>" not in page
    with app.test_request_context():
        assert local_time(phone_row.last_seen_at) in page
    assert "Log out other devices" in page
    assert "Mozilla/5.0" not in page, "the full header is neither kept nor shown"
    assert phone_row.user_agent == "Firefox on Android"


def test_a_single_session_offers_no_logout_of_others(client, make):
    login(client, make.user())

    page = client.get("/account").get_data(as_text=True)

    assert "No other device is logged in." in page
    assert "Log out other devices" not in page


def test_log_out_other_devices_keeps_this_one(app, make):
    user = make.user("ana@example.org")
    phone, tablet, laptop = app.test_client(), app.test_client(), app.test_client()
    attempt_login(phone, "ana@example.org", PASSWORD, remember="y")
    login(tablet, user)
    login(laptop, user)
    phone_remember = phone.get_cookie("remember_token").value
    laptop_row = session_row(laptop)

    response = post(laptop, "/account/logout-other-devices")

    assert response.status_code == 302
    assert location_path(response) == "/account"
    assert "2 other devices were logged out." in laptop.get("/account").get_data(as_text=True)
    assert is_logged_in(laptop)
    assert not is_logged_in(phone)
    assert not is_logged_in(tablet)
    assert _refused(app, remember_token=phone_remember)
    assert [row.id for row in live_sessions(user)] == [laptop_row.id]
    [event] = audit_events("account.other_sessions_revoked", user.id)
    assert event.details == {"count": 2}


def test_log_out_other_devices_is_post_only_with_the_form_token(app, make):
    user = make.user()
    phone, laptop = app.test_client(), app.test_client()
    login(phone, user)
    login(laptop, user)

    assert laptop.get("/account/logout-other-devices").status_code == 405
    assert laptop.post("/account/logout-other-devices", data={}).status_code == 400

    assert len(live_sessions(user)) == 2
    assert is_logged_in(phone)


def test_anonymous_visitors_cannot_log_out_other_devices(client, make):
    user = make.user()
    other = client.application.test_client()
    login(other, user)
    client.get("/login")

    response = post(client, "/account/logout-other-devices")

    assert response.status_code == 401
    assert len(live_sessions(user)) == 1


def test_a_remembered_login_ends_after_its_time_on_the_server(app, client, make):
    user = make.user("ana@example.org")
    attempt_login(client, "ana@example.org", PASSWORD, remember="y")
    remember = client.get_cookie("remember_token").value
    row = session_row(client)
    lifetime = app.config["REMEMBER_COOKIE_DURATION"]
    row.created_at = utcnow() - lifetime + timedelta(minutes=5)
    db.session.commit()
    assert not _refused(app, remember_token=remember)

    row = db.session.get(UserSession, row.id)
    row.created_at = utcnow() - lifetime - timedelta(minutes=1)
    db.session.commit()

    assert _refused(app, remember_token=remember)
    assert not is_logged_in(client), "the browser's own session cookie ends with it"
    assert user.id == row.user_id


def test_a_login_without_remember_me_ends_when_unused(app, client, make):
    login(client, make.user())
    row = session_row(client)
    idle = app.config["PERMANENT_SESSION_LIFETIME"]
    row.last_seen_at = utcnow() - idle - timedelta(minutes=1)
    db.session.commit()

    assert not is_logged_in(client)


def test_a_password_change_ends_every_other_session(app, make):
    user = make.user("ana@example.org")
    phone, laptop = app.test_client(), app.test_client()
    attempt_login(phone, "ana@example.org", PASSWORD, remember="y")
    login(laptop, user)
    phone_remember = phone.get_cookie("remember_token").value

    response = post(
        laptop,
        "/account/password",
        {"pw-current_password": PASSWORD, "pw-new_password": "a brand new passphrase",
         "pw-new_password_again": "a brand new passphrase"},
    )  # fmt: skip

    assert response.status_code == 302
    assert is_logged_in(laptop)
    assert not is_logged_in(phone)
    assert _refused(app, remember_token=phone_remember)
    assert [row.id for row in live_sessions(user)] == [session_row(laptop).id]


def test_remember_me_is_capped_at_30_days(tmp_path):
    app = create_app(
        "testing",
        {
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'cap.db'}",
            "REMEMBER_COOKIE_DURATION": timedelta(days=365),
        },
    )
    assert app.config["REMEMBER_COOKIE_DURATION"] == timedelta(days=30)


def test_remember_days_from_the_environment_is_capped(tmp_path):
    """As deployed: the setting read from the environment by a fresh interpreter."""
    script = "import config; print(config.BaseConfig.REMEMBER_COOKIE_DURATION.days)"
    for days, expected in (("90", "30"), ("7", "7"), ("30", "30")):
        result = subprocess.run(
            [sys.executable, "-c", script],
            cwd=ROOT,
            env={**os.environ, "REMEMBER_DAYS": days},
            capture_output=True,
            text=True,
            check=True,
        )
        assert result.stdout.strip() == expected, days


def test_the_login_form_says_how_long_remember_me_lasts(app, client):
    days = app.config["REMEMBER_COOKIE_DURATION"].days
    page = client.get("/login").get_data(as_text=True)
    assert f"Keep me logged in on this device for {days} days" in page


def test_a_login_without_a_session_row_lasts_one_request(app, make):
    """login_user() on its own (no start_session) leaves a cookie that opens nothing."""
    from flask_login import login_user

    user = make.user()
    view = app.test_client()
    with app.test_request_context():
        login_user(user)
        assert user.get_id() == ""
    view.get("/login")
    with view.session_transaction() as session:
        session["_user_id"] = ""
    assert not is_logged_in(view)


def test_last_seen_is_written_when_it_is_stale(app, client, make):
    """A GET never commits its own session, so the loader notes the time separately."""
    from campaign.accounts import services

    login(client, make.user())
    with client.session_transaction() as session:
        token = session["_user_id"]
    row = session_row(client)
    stale = utcnow() - timedelta(minutes=30)
    row.last_seen_at = stale
    db.session.commit()

    with app.test_request_context("/account", method="GET"):
        assert services.user_by_session_token(token) is not None
    db.session.expire_all()

    seen = db.session.get(UserSession, row.id).last_seen_at
    assert seen > stale + timedelta(minutes=29)
    with app.test_request_context("/account", method="GET"):
        assert services.user_by_session_token(token) is not None
    db.session.expire_all()
    assert db.session.get(UserSession, row.id).last_seen_at == seen, "not again so soon"
