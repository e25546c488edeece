"""Two-factor authentication with TOTP: setup, the second login step, replay, disabling."""

from __future__ import annotations

import re
import time

import pyotp
import pytest

from campaign.core.crypto import DecryptionError, decrypt_field
from campaign.extensions import db
from tests.accounts.helpers import (
    OTHER_SECRET,
    attempt_login,
    audit_events,
    is_logged_in,
    location_path,
    turn_on_two_factor,
)
from tests.conftest import login, post
from tests.factories import PASSWORD

SECRET_ON_PAGE = re.compile(r'<code class="secret">([A-Z2-7]+)</code>')


def _wrong_code(totp: pyotp.TOTP) -> str:
    now = time.time()
    valid = {totp.at(now + 30 * step) for step in (-2, -1, 0, 1, 2)}
    return next(code for code in ("000000", "111111", "222222", "333333") if code not in valid)


def _setup_page(client) -> str:
    response = client.get("/account/two-factor")
    assert response.status_code == 200
    match = SECRET_ON_PAGE.search(response.get_data(as_text=True))
    assert match, "the page shows the secret to type into an app"
    return match.group(1)


def _code(client, code: str, url: str = "/login/two-factor"):
    return post(client, url, {"code": code})


# --- setup -------------------------------------------------------------------------------------


def test_the_setup_page_stores_the_secret_encrypted(client, make):
    user = make.user("ana@example.org")
    login(client, user)

    secret = _setup_page(client)

    db.session.refresh(user)
    assert user.totp_secret.startswith("v1:")
    assert secret not in user.totp_secret
    assert secret.lower() not in user.totp_secret.lower()
    assert decrypt_field(user.totp_secret, table="users", column="totp_secret", row_id=user.id) == (
        secret
    )
    with pytest.raises(DecryptionError):  # bound to its row: useless if copied elsewhere
        decrypt_field(user.totp_secret, table="users", column="totp_secret", row_id=user.id + 1)
    assert user.totp_enabled is False
    page = client.get("/account/two-factor").get_data(as_text=True)
    assert "otpauth://totp/" in page


def test_a_wrong_code_does_not_turn_it_on(client, make):
    user = make.user("ana@example.org")
    login(client, user)
    secret = _setup_page(client)

    response = _code(client, _wrong_code(pyotp.TOTP(secret)), url="/account/two-factor")

    assert response.status_code == 422
    assert "That code did not match." in response.get_data(as_text=True)
    db.session.refresh(user)
    assert user.totp_enabled is False


def test_a_valid_code_turns_it_on(client, make):
    user = make.user("ana@example.org")
    login(client, user)
    secret = _setup_page(client)

    response = _code(client, pyotp.TOTP(secret).now(), url="/account/two-factor")

    assert response.status_code == 302
    assert location_path(response) == "/account"
    db.session.refresh(user)
    assert user.totp_enabled is True
    assert [e.actor_id for e in audit_events("account.2fa_enabled")] == [user.id]
    assert "On. You type a code" in client.get("/account").get_data(as_text=True)


def test_the_setup_page_cannot_replace_an_active_secret(client, make):
    user = make.user("ana@example.org")
    turn_on_two_factor(user)
    stored = user.totp_secret
    login_with_code = attempt_login(client, user.email, PASSWORD)
    assert location_path(login_with_code) == "/login/two-factor"
    totp = pyotp.TOTP(decrypt_field(stored, table="users", column="totp_secret", row_id=user.id))
    assert _code(client, totp.now()).status_code == 302

    response = client.get("/account/two-factor")

    assert response.status_code == 302
    assert location_path(response) == "/account"
    db.session.refresh(user)
    assert user.totp_secret == stored


# --- login -------------------------------------------------------------------------------------


def test_the_password_alone_no_longer_logs_in(client, make):
    user = make.user("ana@example.org")
    turn_on_two_factor(user)

    response = attempt_login(client, "ana@example.org", PASSWORD)

    assert response.status_code == 302
    assert location_path(response) == "/login/two-factor"
    assert not is_logged_in(client)
    assert audit_events("login.succeeded") == []


def test_a_wrong_code_is_refused(client, make):
    user = make.user("ana@example.org")
    totp = turn_on_two_factor(user)
    attempt_login(client, "ana@example.org", PASSWORD)

    response = _code(client, _wrong_code(totp))

    assert response.status_code == 422
    assert "That code did not match." in response.get_data(as_text=True)
    assert not is_logged_in(client)


def test_the_right_code_logs_in(client, make):
    user = make.user("ana@example.org")
    totp = turn_on_two_factor(user)
    attempt_login(client, "ana@example.org", PASSWORD)
    _code(client, _wrong_code(totp))  # a typo first does not spoil the attempt

    response = _code(client, totp.now())

    assert response.status_code == 302
    assert location_path(response) == "/"
    assert is_logged_in(client)
    assert [e.actor_id for e in audit_events("login.succeeded")] == [user.id]
    with client.session_transaction() as session:
        assert not any(key.startswith("2fa_") for key in session)


def test_next_and_remember_me_survive_the_second_step(client, make):
    user = make.user("ana@example.org")
    totp = turn_on_two_factor(user)
    attempt_login(client, "ana@example.org", PASSWORD, url="/login?next=/account", remember="y")
    assert client.get_cookie("remember_token") is None

    response = _code(client, totp.now())

    assert response.headers["Location"] == "/account"
    assert client.get_cookie("remember_token") is not None


def test_the_second_step_needs_the_first(client, make):
    user = make.user("ana@example.org")
    totp = turn_on_two_factor(user)

    assert location_path(client.get("/login/two-factor")) == "/login"
    response = _code(client, totp.now())

    assert response.status_code == 302
    assert location_path(response) == "/login"
    assert not is_logged_in(client)


def test_the_second_step_times_out(client, make):
    user = make.user("ana@example.org")
    totp = turn_on_two_factor(user)
    attempt_login(client, "ana@example.org", PASSWORD)
    with client.session_transaction() as session:
        session["2fa_until"] = time.time() - 1

    response = _code(client, totp.now())

    assert location_path(response) == "/login"
    assert not is_logged_in(client)


def test_a_wrong_password_never_reaches_the_second_step(client, make):
    user = make.user("ana@example.org")
    turn_on_two_factor(user)

    response = attempt_login(client, "ana@example.org", OTHER_SECRET)

    assert response.status_code == 422
    with client.session_transaction() as session:
        assert "2fa_user" not in session


def test_a_code_cannot_be_used_twice(app, make):
    user = make.user("ana@example.org")
    totp = turn_on_two_factor(user)
    first, second = app.test_client(), app.test_client()
    code = totp.now()
    attempt_login(first, "ana@example.org", PASSWORD)
    assert _code(first, code).status_code == 302

    attempt_login(second, "ana@example.org", PASSWORD)
    replayed = _code(second, code)

    assert replayed.status_code == 422
    assert not is_logged_in(second)
    # The next code (the service accepts one step either side) still works.
    assert _code(second, totp.at(time.time() + 30)).status_code == 302
    assert is_logged_in(second)


def test_the_setup_code_cannot_be_replayed_to_log_in(client, make):
    user = make.user("ana@example.org")
    login(client, user)
    secret = _setup_page(client)
    totp = pyotp.TOTP(secret)
    code = totp.now()
    assert _code(client, code, url="/account/two-factor").status_code == 302
    post(client, "/logout")

    attempt_login(client, "ana@example.org", PASSWORD)

    assert _code(client, code).status_code == 422
    assert _code(client, totp.at(time.time() + 30)).status_code == 302


# --- disabling ---------------------------------------------------------------------------------


def test_turning_it_off_needs_the_password(client, make):
    user = make.user("ana@example.org")
    totp = turn_on_two_factor(user)
    attempt_login(client, "ana@example.org", PASSWORD)
    _code(client, totp.now())

    refused = post(client, "/account/two-factor/disable", {"tf-password": OTHER_SECRET})

    assert refused.status_code == 422
    assert "Your password was not right." in refused.get_data(as_text=True)
    db.session.refresh(user)
    assert user.totp_enabled is True
    assert user.totp_secret is not None


def test_turning_it_off(app, client, make):
    user = make.user("ana@example.org")
    totp = turn_on_two_factor(user)
    attempt_login(client, "ana@example.org", PASSWORD)
    _code(client, totp.now())

    response = post(client, "/account/two-factor/disable", {"tf-password": PASSWORD})

    assert response.status_code == 302
    db.session.refresh(user)
    assert user.totp_enabled is False
    assert user.totp_secret is None
    assert [e.actor_id for e in audit_events("account.2fa_disabled")] == [user.id]
    fresh = app.test_client()
    assert location_path(attempt_login(fresh, "ana@example.org", PASSWORD)) == "/"
    assert is_logged_in(fresh)
