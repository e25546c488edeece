"""The login form is rate limited per client address (the limiter is off in testing)."""

from __future__ import annotations

from tests.accounts.helpers import LOGIN_FAILED, attempt_login, turn_on_two_factor
from tests.conftest import post
from tests.factories import PASSWORD


def test_the_eleventh_login_attempt_in_a_minute_is_refused(app, client, make, rate_limited):
    assert app.config["LOGIN_RATE_LIMIT"].startswith("10 per minute")
    user = make.user("ana@example.org")

    for attempt in range(10):
        response = attempt_login(client, "nobody@example.org", f"guess number {attempt}")
        assert response.status_code == 422, attempt

    refused = attempt_login(client, user.email, PASSWORD)

    assert refused.status_code == 429
    page = refused.get_data(as_text=True)
    assert "Too many attempts" in page
    assert "Please wait a few minutes and try again." in page
    assert LOGIN_FAILED not in page
    assert client.get("/account").status_code == 302, "the refused attempt did not log in"
    assert client.get("/login").status_code == 200, "the form itself is still shown"


def test_the_limit_is_per_client_address(app, make, rate_limited):
    user = make.user("ana@example.org")
    busy = app.test_client()
    for attempt in range(11):
        response = attempt_login(busy, "nobody@example.org", f"guess number {attempt}")
    assert response.status_code == 429

    elsewhere = app.test_client()
    elsewhere.environ_base["REMOTE_ADDR"] = "192.0.2.77"
    response = attempt_login(elsewhere, user.email, PASSWORD)

    assert response.status_code == 302


def test_the_second_factor_step_is_limited_too(app, client, make, rate_limited, monkeypatch):
    # The per-account lockout (six wrong codes) would step in first: this is the limiter.
    monkeypatch.setitem(app.config, "LOGIN_MAX_FAILURES", 100)
    user = make.user("ana@example.org")
    turn_on_two_factor(user)
    assert attempt_login(client, user.email, PASSWORD).status_code == 302
    codes = [post(client, "/login/two-factor", {"code": "000000"}).status_code for _ in range(11)]

    assert codes == [422] * 10 + [429]
