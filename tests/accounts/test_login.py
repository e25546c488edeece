"""Logging in and out: generic failures, lockout, session rotation, remember me, revocation."""

from __future__ import annotations

from datetime import timedelta

import pytest

from campaign.accounts.models import token_hash
from campaign.core.models import utcnow
from campaign.extensions import db
from tests.accounts.helpers import (
    LOGIN_FAILED,
    OTHER_SECRET,
    attempt_login,
    audit_events,
    is_logged_in,
    live_sessions,
    location_path,
    throttles,
    without_csrf,
)
from tests.conftest import login, post
from tests.factories import PASSWORD


def test_the_right_password_logs_in(client, make):
    user = make.user("ana@example.org")

    response = attempt_login(client, "ana@example.org", PASSWORD)

    assert response.status_code == 302
    assert location_path(response) == "/"
    page = client.get("/account")
    assert page.status_code == 200
    assert "Logged in as ana@example.org." in page.get_data(as_text=True)
    db.session.refresh(user)
    assert user.last_login_at is not None
    assert [e.actor_id for e in audit_events("login.succeeded")] == [user.id]


def test_the_email_is_matched_whatever_its_case(client, make):
    make.user("ana@example.org")

    response = attempt_login(client, "  ANA@Example.Org ", PASSWORD)

    assert response.status_code == 302
    assert is_logged_in(client)


def test_a_wrong_password_and_an_unknown_email_get_the_same_answer(app, make):
    user = make.user("ana@example.org")
    known, unknown = app.test_client(), app.test_client()

    wrong = attempt_login(known, "ana@example.org", OTHER_SECRET)
    nobody = attempt_login(unknown, "nobody@example.org", OTHER_SECRET)

    assert wrong.status_code == nobody.status_code == 422
    wrong_page = without_csrf(wrong.get_data(as_text=True))
    nobody_page = without_csrf(nobody.get_data(as_text=True))
    assert LOGIN_FAILED in wrong_page
    assert wrong_page.replace("ana@example.org", "X") == nobody_page.replace(
        "nobody@example.org", "X"
    )
    assert not is_logged_in(known)
    assert not is_logged_in(unknown)
    db.session.refresh(user)
    assert user.failed_logins == 1
    assert [e.subject_user_id for e in audit_events("login.failed")] == [user.id]
    assert len(audit_events("login.failed_unknown")) == 1
    assert OTHER_SECRET not in wrong_page


def test_a_deactivated_account_cannot_log_in(client, make):
    user = make.user("ana@example.org")
    user.is_active_account = False
    db.session.commit()

    response = attempt_login(client, "ana@example.org", PASSWORD)

    assert response.status_code == 422
    assert LOGIN_FAILED in response.get_data(as_text=True)
    assert not is_logged_in(client)


def test_too_many_failures_lock_the_account(app, client, make):
    """Six wrong passwords from one address lock that address out of the account."""
    user = make.user("ana@example.org")
    failures = app.config["LOGIN_MAX_FAILURES"]
    assert failures == 6

    for attempt in range(failures):
        assert throttles(user) == [] or throttles(user)[0].locked_until is None, attempt
        response = attempt_login(client, "ana@example.org", f"wrong password {attempt}")
        assert response.status_code == 422

    [throttle] = throttles(user)
    minutes = app.config["LOGIN_LOCKOUT_MINUTES"]
    assert throttle.locked_until > utcnow() + timedelta(minutes=minutes - 1)
    assert throttle.address_key != "127.0.0.1" and "127.0.0.1" not in throttle.address_key
    assert len(audit_events("login.failed", user.id)) == failures
    assert len(audit_events("account.locked_for_address", user.id)) == 1

    # Now even the right password is refused, with the very same message.
    response = attempt_login(client, "ana@example.org", PASSWORD)
    assert response.status_code == 422
    assert LOGIN_FAILED in response.get_data(as_text=True)
    assert not is_logged_in(client)
    assert len(audit_events("login.refused_locked", user.id)) == 1
    assert audit_events("login.succeeded") == []


def test_the_lock_lifts_when_its_time_is_up(client, make):
    user = make.user("ana@example.org")
    user.locked_until = utcnow() - timedelta(seconds=1)
    user.failed_logins = 3
    db.session.commit()

    response = attempt_login(client, "ana@example.org", PASSWORD)

    assert response.status_code == 302
    db.session.refresh(user)
    assert user.locked_until is None
    assert user.failed_logins == 0


def test_a_success_resets_the_failure_count(client, make):
    user = make.user("ana@example.org")
    for _ in range(5):
        attempt_login(client, "ana@example.org", OTHER_SECRET)
    db.session.refresh(user)
    assert user.failed_logins == 5

    login(client, user)
    post(client, "/logout")
    for _ in range(5):
        attempt_login(client, "ana@example.org", OTHER_SECRET)

    db.session.refresh(user)
    assert user.failed_logins == 5
    assert user.locked_until is None


def test_logging_in_starts_a_new_session(client, make):
    user = make.user()
    client.get("/login")
    with client.session_transaction() as session:
        session["x"] = 1
        session["planted"] = "by someone else"

    login(client, user)

    with client.session_transaction() as session:
        assert "x" not in session
        assert "planted" not in session
        key = session.get("_user_id")
    [row] = live_sessions(user)
    assert row.token_hash == token_hash(key) and key not in row.token_hash
    assert row.user_agent  # a short summary of the browser


@pytest.mark.parametrize("remember", [True, False])
def test_remember_me_sets_a_http_only_cookie(app, client, make, remember):
    make.user("ana@example.org")
    form = {"remember": "y"} if remember else {}

    response = attempt_login(client, "ana@example.org", PASSWORD, **form)

    assert response.status_code == 302
    cookie = client.get_cookie("remember_token")
    if not remember:
        assert cookie is None
        return
    assert cookie is not None
    assert cookie.http_only
    assert cookie.same_site == "Lax"
    header = next(h for h in response.headers.getlist("Set-Cookie") if "remember_token=" in h)
    assert "HttpOnly" in header
    lifetime = app.config["REMEMBER_COOKIE_DURATION"]
    assert cookie.expires is not None
    assert abs(cookie.expires - (utcnow() + lifetime)) < timedelta(minutes=1)
    # The cookie alone (a browser restarted, its session cookie gone) logs the user in.
    restarted = app.test_client()
    restarted.set_cookie("remember_token", cookie.value)
    assert is_logged_in(restarted)
    # It is signed: the id alone, or a tampered signature, logs nobody in.
    forged = app.test_client()
    forged.set_cookie("remember_token", f"{cookie.value.split('|')[0]}|{'0' * 128}")
    assert not is_logged_in(forged)


def test_logout_is_post_only(client, make):
    user = make.user()
    login(client, user)

    assert client.get("/logout").status_code == 405
    assert is_logged_in(client)


def test_logout_without_the_form_token_is_refused(client, make):
    user = make.user()
    login(client, user)

    response = client.post("/logout", data={})

    assert response.status_code == 400
    assert is_logged_in(client)


def test_logout_logs_out(client, make):
    user = make.user()
    login(client, user)

    response = post(client, "/logout")

    assert response.status_code == 302
    assert not is_logged_in(client)


def test_logout_also_ends_a_remembered_login(client, make):
    """After logging out, the remember-me cookie must not log the browser back in.

    The logout response itself has to delete the cookie: if the browser is closed before
    its next request (so its session cookie is gone), a cookie left behind would log the
    next person at that computer straight back in.
    """
    make.user("ana@example.org")
    attempt_login(client, "ana@example.org", PASSWORD, remember="y")
    assert client.get_cookie("remember_token") is not None

    post(client, "/logout")
    client.delete_cookie("session")  # the browser is closed and opened again

    assert not is_logged_in(client)
    assert client.get_cookie("remember_token") is None


def test_logout_everywhere_revokes_every_session(app, make):
    user = make.user("ana@example.org")
    phone, laptop, kept = app.test_client(), app.test_client(), app.test_client()
    attempt_login(phone, "ana@example.org", PASSWORD, remember="y")
    login(laptop, user)
    remember_cookie = phone.get_cookie("remember_token").value
    session_cookie = phone.get_cookie("session").value
    kept.set_cookie("session", session_cookie)
    assert is_logged_in(kept), "a copied session cookie works until it is revoked"

    response = post(laptop, "/account/logout-everywhere")

    assert response.status_code == 302
    assert location_path(response) == "/login"
    assert live_sessions(user) == []
    assert not is_logged_in(laptop)
    assert not is_logged_in(phone)
    stolen_session, stolen_remember = app.test_client(), app.test_client()
    stolen_session.set_cookie("session", session_cookie)
    stolen_remember.set_cookie("remember_token", remember_cookie)
    assert not is_logged_in(stolen_session)
    assert not is_logged_in(stolen_remember)
    assert len(audit_events("account.sessions_revoked", user.id)) == 1
    # Logging in again works as usual.
    login(laptop, user)
    assert is_logged_in(laptop)


def test_logout_everywhere_is_post_only_and_needs_the_form_token(client, make):
    user = make.user()
    login(client, user)

    assert client.get("/account/logout-everywhere").status_code == 405
    assert client.post("/account/logout-everywhere", data={}).status_code == 400

    assert len(live_sessions(user)) == 1
    assert is_logged_in(client)
