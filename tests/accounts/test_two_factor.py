"""Two-factor authentication with TOTP: setup, the second login step, replay, disabling."""

from __future__ import annotations

import re
import time

import pyotp
import pytest
from sqlalchemy import select

from campaign.accounts.models import RecoveryCode
from campaign.core.crypto import DecryptionError, decrypt_field
from campaign.core.outbox import MailCategory
from campaign.extensions import db
from tests.accounts.helpers import (
    LOGIN_FAILED,
    OTHER_SECRET,
    attempt_login,
    audit_events,
    flashes,
    is_logged_in,
    location_path,
    only_mail,
    throttles,
    turn_on_two_factor,
)
from tests.conftest import login, mail_to, post
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

    assert response.status_code == 200
    assert "Your recovery codes" in response.get_data(as_text=True)
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
    assert _code(client, code, url="/account/two-factor").status_code == 200
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


# --- wrong codes count towards the lockout ------------------------------------------------------


def _lock_with_wrong_codes(client, user, totp, count: int) -> list:
    attempt_login(client, user.email, PASSWORD)
    return [_code(client, _wrong_code(totp)) for _ in range(count)]


def test_six_wrong_codes_lock_the_account_like_wrong_passwords(app, client, make):
    user = make.user("ana@example.org")
    totp = turn_on_two_factor(user)
    assert app.config["LOGIN_MAX_FAILURES"] == 6

    responses = _lock_with_wrong_codes(client, user, totp, 6)

    assert [r.status_code for r in responses] == [422] * 5 + [302]
    assert location_path(responses[-1]) == "/login"
    assert len(audit_events("login.failed", user.id)) == 6
    assert len(audit_events("account.locked_for_address", user.id)) == 1
    # Locked like six wrong passwords: the right password and the right code are refused.
    again = attempt_login(client, user.email, PASSWORD)
    assert again.status_code == 422
    assert LOGIN_FAILED in again.get_data(as_text=True)
    assert location_path(_code(client, totp.now())) == "/login"
    assert not is_logged_in(client)


def test_five_wrong_codes_then_the_right_one_log_in(client, make):
    user = make.user("ana@example.org")
    totp = turn_on_two_factor(user)

    responses = _lock_with_wrong_codes(client, user, totp, 5)

    assert [r.status_code for r in responses] == [422] * 5
    assert _code(client, totp.now()).status_code == 302
    assert is_logged_in(client)
    assert throttles(user) == [], "a full login forgives that address's failures"


def test_wrong_passwords_and_wrong_codes_add_up(app, client, make):
    user = make.user("ana@example.org")
    totp = turn_on_two_factor(user)
    for n in range(3):
        attempt_login(client, user.email, f"wrong password {n}")
    attempt_login(client, user.email, PASSWORD)  # a right password alone forgives nothing

    codes = [_code(client, _wrong_code(totp)).status_code for _ in range(3)]

    assert codes == [422, 422, 302]
    assert attempt_login(client, user.email, PASSWORD).status_code == 422


def test_a_stranger_with_the_password_cannot_lock_out_the_owners_device(app, make):
    user = make.user("ana@example.org")
    totp = turn_on_two_factor(user)
    stranger, owner = app.test_client(), app.test_client()
    stranger.environ_base["REMOTE_ADDR"] = "203.0.113.5"
    owner.environ_base["REMOTE_ADDR"] = "198.51.100.7"
    _lock_with_wrong_codes(stranger, user, totp, 6)

    attempt_login(owner, user.email, PASSWORD)

    assert _code(owner, totp.now()).status_code == 302
    assert is_logged_in(owner)


# --- recovery codes -------------------------------------------------------------------------------

CODE_ON_PAGE = re.compile(
    r"<li><code>([a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4})</code></li>"
)


def _turn_on_and_read_codes(client, user) -> tuple[pyotp.TOTP, list[str]]:
    login(client, user)
    totp = pyotp.TOTP(_setup_page(client))
    response = _code(client, totp.now(), url="/account/two-factor")
    assert response.status_code == 200
    return totp, CODE_ON_PAGE.findall(response.get_data(as_text=True))


def _recovery_rows(user) -> list[RecoveryCode]:
    return list(db.session.scalars(select(RecoveryCode).where(RecoveryCode.user_id == user.id)))


def test_turning_it_on_shows_ten_recovery_codes_once_stored_hashed(client, make):
    user = make.user("ana@example.org")

    _totp, codes = _turn_on_and_read_codes(client, user)

    assert len(codes) == len(set(codes)) == 10
    rows = _recovery_rows(user)
    assert len(rows) == 10
    stored = " ".join(row.code_hash for row in rows)
    for code in codes:
        assert code not in stored and code.replace("-", "") not in stored
    settings_page = client.get("/account").get_data(as_text=True)
    assert not any(code in settings_page for code in codes), "shown once, never again"
    assert "You have 10 unused recovery codes." in settings_page


def test_a_recovery_code_works_once(app, make):
    user = make.user("ana@example.org")
    setup = app.test_client()
    _totp, codes = _turn_on_and_read_codes(setup, user)
    post(setup, "/logout")
    first, second = app.test_client(), app.test_client()

    attempt_login(first, user.email, PASSWORD)
    used = _code(first, codes[3].upper().replace("-", " "))  # typed loosely

    assert used.status_code == 302
    assert is_logged_in(first)
    assert [e.actor_id for e in audit_events("login.recovery_code_used")] == [user.id]

    attempt_login(second, user.email, PASSWORD)
    reused = _code(second, codes[3])

    assert reused.status_code == 422
    assert not is_logged_in(second)
    assert _code(second, codes[4]).status_code == 302, "another code still works"
    assert sum(row.used_at is not None for row in _recovery_rows(user)) == 2


def test_using_a_recovery_code_says_how_many_are_left(app, make):
    user = make.user("ana@example.org")
    setup = app.test_client()
    _totp, codes = _turn_on_and_read_codes(setup, user)
    browser = app.test_client()
    attempt_login(browser, user.email, PASSWORD)

    _code(browser, codes[0])

    assert any("9 are left" in message for message in flashes(browser))


def test_a_made_up_recovery_code_counts_as_a_failure(client, make):
    user = make.user("ana@example.org")
    turn_on_two_factor(user)
    attempt_login(client, user.email, PASSWORD)

    response = _code(client, "abcd-efgh-jkmn-pqrs")

    assert response.status_code == 422
    assert len(audit_events("login.failed", user.id)) == 1


def test_new_recovery_codes_replace_the_old_ones(app, client, make):
    user = make.user("ana@example.org")
    _totp, old_codes = _turn_on_and_read_codes(client, user)

    refused = post(client, "/account/two-factor/recovery-codes", {"rc-password": OTHER_SECRET})
    assert refused.status_code == 422
    assert "Your password was not right." in refused.get_data(as_text=True)
    assert len(_recovery_rows(user)) == 10

    response = post(client, "/account/two-factor/recovery-codes", {"rc-password": PASSWORD})

    assert response.status_code == 200
    new_codes = CODE_ON_PAGE.findall(response.get_data(as_text=True))
    assert len(new_codes) == 10 and not set(new_codes) & set(old_codes)
    assert [e.actor_id for e in audit_events("account.recovery_codes_regenerated")] == [user.id]
    browser = app.test_client()
    attempt_login(browser, user.email, PASSWORD)
    assert _code(browser, old_codes[0]).status_code == 422
    assert _code(browser, new_codes[0]).status_code == 302


def test_recovery_codes_need_two_factor_on(client, make):
    user = make.user("ana@example.org")
    login(client, user)

    response = post(client, "/account/two-factor/recovery-codes", {"rc-password": PASSWORD})

    assert response.status_code == 302
    assert "Turn on two-factor authentication first." in flashes(client)
    assert _recovery_rows(user) == []


def test_turning_it_off_deletes_the_recovery_codes(client, make):
    user = make.user("ana@example.org")
    _turn_on_and_read_codes(client, user)

    post(client, "/account/two-factor/disable", {"tf-password": PASSWORD})

    assert _recovery_rows(user) == []


# --- an admin reset -------------------------------------------------------------------------------


def test_an_admin_can_reset_someones_two_factor(app, make):
    user = make.user("ana@example.org")
    totp = turn_on_two_factor(user)
    phone = app.test_client()
    attempt_login(phone, user.email, PASSWORD)
    _code(phone, totp.now())
    admin = make.user("admin@example.org", admin=True)
    desk = app.test_client()
    login(desk, admin)

    found = desk.get("/admin/users", query_string={"email": "ANA@example.org"})
    assert found.status_code == 200
    assert "Two-factor authentication is on." in found.get_data(as_text=True)
    confirm = desk.get(f"/admin/users/{user.id}/two-factor-reset")
    assert confirm.status_code == 200
    db.session.refresh(user)
    assert user.totp_enabled, "the page alone changes nothing"

    response = post(desk, f"/admin/users/{user.id}/two-factor-reset")

    assert response.status_code == 302
    db.session.refresh(user)
    assert user.totp_enabled is False and user.totp_secret is None
    [event] = audit_events("account.2fa_reset_by_admin", user.id)
    assert event.actor_id == admin.id
    message = only_mail("ana@example.org", "two_factor_reset")
    assert message.category == MailCategory.TRANSACTIONAL
    assert "turned off two-factor authentication" in message.text_body
    assert not is_logged_in(phone), "every device of theirs is logged out"
    # The password alone now logs in.
    fresh = app.test_client()
    assert location_path(attempt_login(fresh, user.email, PASSWORD)) == "/"
    assert is_logged_in(fresh)


def test_only_platform_admins_can_reset_two_factor(app, client, make):
    user = make.user("ana@example.org")
    turn_on_two_factor(user)
    organiser = make.user("organiser@example.org")
    login(client, organiser)

    assert client.get("/admin/users", query_string={"email": user.email}).status_code == 404
    assert client.get(f"/admin/users/{user.id}/two-factor-reset").status_code == 404
    assert post(client, f"/admin/users/{user.id}/two-factor-reset").status_code == 404

    db.session.refresh(user)
    assert user.totp_enabled
    assert audit_events("account.2fa_reset_by_admin") == []


def test_the_admin_reset_needs_the_form_token(app, client, make):
    user = make.user("ana@example.org")
    turn_on_two_factor(user)
    login(client, make.user(admin=True))

    assert client.post(f"/admin/users/{user.id}/two-factor-reset", data={}).status_code == 400

    db.session.refresh(user)
    assert user.totp_enabled


def test_the_admin_reset_of_an_account_without_two_factor_says_so(client, make):
    user = make.user("ana@example.org")
    login(client, make.user(admin=True))

    response = post(client, f"/admin/users/{user.id}/two-factor-reset")

    assert response.status_code == 302
    assert "does not use two-factor" in " ".join(flashes(client))
    assert audit_events("account.2fa_reset_by_admin") == []
    assert mail_to("ana@example.org") == []


def test_the_admin_lookup_refuses_bad_input_clearly(client, make):
    login(client, make.user(admin=True))

    for query, status, text in (
        ("x" * 400, 400, "too long"),
        ("not an email", 200, "Enter an email address"),
        ("nobody@example.org", 200, "No account uses that address."),
        ("<script>alert(1)</script>@example.org", 200, ""),
    ):
        response = client.get("/admin/users", query_string={"email": query})
        assert response.status_code == status, query
        body = response.get_data(as_text=True)
        assert text in body
        assert "<script>alert(1)</script>" not in body
    assert client.get("/admin/users/999999/two-factor-reset").status_code == 404
