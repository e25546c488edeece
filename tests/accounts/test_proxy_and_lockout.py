"""Limits that hold behind a proxy, and a lockout strangers cannot use against the owner."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from werkzeug.middleware.proxy_fix import ProxyFix

from campaign import create_app, trust_proxies
from campaign.accounts import services
from campaign.core.models import utcnow
from campaign.extensions import db
from tests.accounts.helpers import (
    LOGIN_FAILED,
    attempt_login,
    audit_events,
    is_logged_in,
    throttles,
)
from tests.factories import PASSWORD

ROOT = Path(__file__).resolve().parents[2]


def _client_behind_proxy(app, forwarded_for: str):
    """A browser whose requests arrive through the proxy (127.0.0.1) naming the client."""
    browser = app.test_client()
    browser.environ_base["HTTP_X_FORWARDED_FOR"] = forwarded_for
    return browser


@pytest.fixture
def behind_one_proxy(app, monkeypatch):
    """The session app as create_app() builds it with TRUSTED_PROXY_HOPS=1."""
    monkeypatch.setitem(app.config, "TRUSTED_PROXY_HOPS", 1)
    monkeypatch.setattr(app, "wsgi_app", app.wsgi_app)  # restored afterwards
    trust_proxies(app)


def _exhaust_login_limit(browser) -> None:
    codes = [
        attempt_login(browser, "nobody@example.org", f"guess {n}").status_code for n in range(11)
    ]
    assert codes == [422] * 10 + [429]


def test_with_one_trusted_hop_each_forwarded_client_has_its_own_limit(
    app, make, rate_limited, behind_one_proxy
):
    user = make.user("ana@example.org")
    stranger = _client_behind_proxy(app, "203.0.113.5")
    owner = _client_behind_proxy(app, "198.51.100.7")

    _exhaust_login_limit(stranger)
    response = attempt_login(owner, user.email, PASSWORD)

    assert response.status_code == 302
    assert is_logged_in(owner)
    # The real client address is what the audit log records too.
    [event] = audit_events("login.succeeded", user.id)
    assert event.ip_address == "198.51.100.7"


def test_without_trusted_hops_the_header_is_ignored(app, make, rate_limited):
    assert app.config["TRUSTED_PROXY_HOPS"] == 0
    user = make.user("ana@example.org")
    stranger = _client_behind_proxy(app, "203.0.113.5")
    owner = _client_behind_proxy(app, "198.51.100.7")

    _exhaust_login_limit(stranger)
    response = attempt_login(owner, user.email, PASSWORD)

    assert response.status_code == 429, "both share the one address the server saw"
    assert not is_logged_in(owner)


def test_with_a_trusted_hop_a_forged_leftmost_address_does_not_help(
    app, make, rate_limited, behind_one_proxy
):
    """nginx appends the real address; only the last one (one hop) is believed."""
    make.user("ana@example.org")
    _exhaust_login_limit(_client_behind_proxy(app, "203.0.113.5"))

    forged = _client_behind_proxy(app, "10.9.9.9, 203.0.113.5")

    assert attempt_login(forged, "nobody@example.org", "again").status_code == 429


def test_create_app_trusts_only_the_configured_hops(tmp_path):
    url = f"sqlite:///{tmp_path / 'proxy.db'}"
    plain = create_app("testing", {"SQLALCHEMY_DATABASE_URI": url})
    assert not isinstance(plain.wsgi_app, ProxyFix)

    proxied = create_app("testing", {"SQLALCHEMY_DATABASE_URI": url, "TRUSTED_PROXY_HOPS": 2})

    fix = proxied.wsgi_app
    assert isinstance(fix, ProxyFix)
    assert (fix.x_for, fix.x_proto, fix.x_host, fix.x_port, fix.x_prefix) == (2, 2, 0, 0, 0)


def test_the_scheme_comes_from_the_proxy_but_the_host_never_does(
    app, behind_one_proxy, monkeypatch
):
    browser = app.test_client()
    browser.environ_base.update(
        {"HTTP_X_FORWARDED_FOR": "203.0.113.5", "HTTP_X_FORWARDED_PROTO": "https",
         "HTTP_X_FORWARDED_HOST": "evil.example"}
    )  # fmt: skip
    seen = {}

    def _look() -> None:
        from flask import request

        seen.update(scheme=request.scheme, host=request.host, addr=request.remote_addr)

    monkeypatch.setitem(app.before_request_funcs, None, [*app.before_request_funcs[None], _look])
    browser.get("/login")
    assert seen == {"scheme": "https", "host": "localhost", "addr": "203.0.113.5"}


# --- production and several workers -------------------------------------------------------


@pytest.fixture
def production(monkeypatch, tmp_path):
    monkeypatch.setattr("config.ProductionConfig.SECRET_KEY", "s" * 40)
    monkeypatch.setattr("config.ProductionConfig.SQLALCHEMY_DATABASE_URI",
                        f"sqlite:///{tmp_path / 'p.db'}")  # fmt: skip
    monkeypatch.setattr("config.ProductionConfig.ENCRYPTION_KEYS", "k1:" + "A" * 43)
    monkeypatch.setattr("config.ProductionConfig.BASE_URL", "https://localhost")
    monkeypatch.setattr("config.ProductionConfig.CELERY_BROKER_URL", "redis://127.0.0.1:1/0")


def test_production_refuses_memory_storage_with_several_workers(production):
    with pytest.raises(RuntimeError) as refused:
        create_app("production", {"WEB_WORKERS": 4, "RATELIMIT_STORAGE_URI": "memory://"})
    message = str(refused.value)
    assert "4 web workers" in message
    assert "RATELIMIT_STORAGE_URI" in message and "redis://" in message


def test_production_starts_with_redis_storage_or_one_worker(production):
    redis_url = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/7")
    several = create_app("production", {"WEB_WORKERS": 4, "RATELIMIT_STORAGE_URI": redis_url})
    one = create_app("production", {"WEB_WORKERS": 1, "RATELIMIT_STORAGE_URI": "memory://"})
    assert several.config["WEB_WORKERS"] == 4
    assert one.config["WEB_WORKERS"] == 1


def test_the_worker_count_comes_from_the_environment_gunicorn_reads(production):
    """WEB_WORKERS, else WEB_CONCURRENCY: the same number gunicorn.conf.py starts."""
    script = (
        "import runpy, config; conf = runpy.run_path('deploy/gunicorn.conf.py'); "
        "print(conf['workers'], config.BaseConfig.WEB_WORKERS)"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("WEB_WORKERS", "WEB_CONCURRENCY")}
    for extra, expected in (({}, "1 1"), ({"WEB_CONCURRENCY": "3"}, "3 3"),
                            ({"WEB_CONCURRENCY": "3", "WEB_WORKERS": "5"}, "5 5")):  # fmt: skip
        result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env={**env, **extra},
                                capture_output=True, text=True, check=True)  # fmt: skip
        assert result.stdout.strip() == expected, extra

    production_start = "from campaign import create_app; create_app('production')"
    result = subprocess.run(
        [sys.executable, "-c", production_start],
        cwd=ROOT,
        env={**env, "WEB_CONCURRENCY": "2", "SECRET_KEY": "s" * 40,
             "DATABASE_URL": "sqlite://", "ENCRYPTION_KEYS": "k1:" + "A" * 43,
             "CAMPAIGN_ENV": "production", "BASE_URL": "https://localhost",
             "CELERY_BROKER_URL": "redis://127.0.0.1:1/0"},
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode != 0
    assert "RATELIMIT_STORAGE_URI is memory://" in result.stderr


# --- lockout per account and address ---------------------------------------------------------


def _from(app, address: str):
    browser = app.test_client()
    browser.environ_base["REMOTE_ADDR"] = address
    return browser


def test_a_strangers_failures_do_not_stop_the_owner_elsewhere(app, make):
    user = make.user("ana@example.org")
    stranger = _from(app, "203.0.113.5")
    for n in range(app.config["LOGIN_MAX_FAILURES"] * 2):
        assert attempt_login(stranger, user.email, f"guess {n}").status_code == 422
    refused = attempt_login(stranger, user.email, PASSWORD)
    assert refused.status_code == 422, "the stranger's own address is locked out"
    assert LOGIN_FAILED in refused.get_data(as_text=True)

    owner = _from(app, "198.51.100.7")
    response = attempt_login(owner, user.email, PASSWORD)

    assert response.status_code == 302
    assert is_logged_in(owner)


def test_an_address_lock_grows_with_each_repeat(app, make):
    user = make.user("ana@example.org")
    stranger = _from(app, "203.0.113.5")
    limit, minutes = app.config["LOGIN_MAX_FAILURES"], app.config["LOGIN_LOCKOUT_MINUTES"]
    lengths = []
    for _round in range(3):
        for n in range(limit):
            attempt_login(stranger, user.email, f"guess {n}")
        [throttle] = throttles(user)
        lengths.append(throttle.locked_until - utcnow())
        throttle.locked_until = utcnow() - timedelta(seconds=1)  # wait it out
        db.session.commit()

    expected = [timedelta(minutes=minutes * factor) for factor in (1, 2, 4)]
    for length, want in zip(lengths, expected, strict=True):
        assert want - timedelta(minutes=1) < length <= want


def test_an_address_lock_is_capped_at_a_day(app, make):
    user = make.user("ana@example.org")
    with app.test_request_context():
        for _ in range(app.config["LOGIN_MAX_FAILURES"]):
            services.record_failure(user, "203.0.113.5")
        [throttle] = throttles(user)
        throttle.lockouts = 20
        throttle.locked_until = None
        for _ in range(app.config["LOGIN_MAX_FAILURES"]):
            services.record_failure(user, "203.0.113.5")
    assert throttle.locked_until - utcnow() <= timedelta(days=1)


def test_failures_from_many_addresses_lock_the_account_briefly(app, make):
    user = make.user("ana@example.org")
    threshold = app.config["LOGIN_ACCOUNT_MAX_FAILURES"]
    step = app.config["LOGIN_ACCOUNT_LOCKOUT_MINUTES"]
    assert threshold > app.config["LOGIN_MAX_FAILURES"]
    # A botnet: never enough from one address to lock that address.
    per_address = app.config["LOGIN_MAX_FAILURES"] - 1
    addresses = [f"203.0.113.{n}" for n in range(1, threshold // per_address + 2)]
    sent = 0
    for address in addresses:
        browser = _from(app, address)
        for n in range(per_address):
            if sent == threshold - 1:
                break
            attempt_login(browser, user.email, f"guess {n}")
            sent += 1
    owner = _from(app, "198.51.100.7")
    db.session.refresh(user)
    assert user.locked_until is None
    assert attempt_login(owner, user.email, PASSWORD).status_code == 302, "not yet"
    post_logout = _from(app, "198.51.100.8")

    # The owner's success forgave the account-wide count: the botnet starts again.
    for address in addresses:
        browser = _from(app, address.replace("203.0.113.", "203.0.114."))
        for n in range(per_address):
            attempt_login(browser, user.email, f"again {n}")
    db.session.refresh(user)
    assert user.locked_until is not None
    first = user.locked_until - utcnow()
    assert timedelta(minutes=step) - timedelta(seconds=30) < first <= timedelta(minutes=step)
    assert attempt_login(post_logout, user.email, PASSWORD).status_code == 422
    assert len(audit_events("account.locked", user.id)) == 1


def test_account_locks_grow_slowly_and_stay_short(app, make):
    user = make.user("ana@example.org")
    step = timedelta(minutes=app.config["LOGIN_ACCOUNT_LOCKOUT_MINUTES"])
    lengths = []
    with app.test_request_context():
        for round_number in range(20):
            for n in range(app.config["LOGIN_ACCOUNT_MAX_FAILURES"]):
                services.record_failure(user, f"203.0.{round_number}.{n}")
            lengths.append(user.locked_until - utcnow())
            user.locked_until = utcnow() - timedelta(seconds=1)
    assert lengths[0] <= step and lengths[1] <= 2 * step and lengths[1] > step
    assert max(lengths) <= timedelta(minutes=30)


def test_the_throttle_keeps_no_client_address(app, make):
    user = make.user("ana@example.org")
    attempt_login(_from(app, "203.0.113.77"), user.email, "wrong")
    [throttle] = throttles(user)
    assert "203.0.113.77" not in throttle.address_key
    assert len(throttle.address_key) >= 32


def test_a_reset_lifts_every_address_lock(app, make):
    user = make.user("ana@example.org")
    stranger = _from(app, "203.0.113.5")
    for n in range(app.config["LOGIN_MAX_FAILURES"]):
        attempt_login(stranger, user.email, f"guess {n}")
    assert throttles(user)[0].locked_until is not None
    with app.test_request_context():
        services.reset_password(
            services.make_token(
                "reset", {"u": user.id, "f": services.fingerprint(user.password_hash)}
            ),
            "a brand new passphrase",
        )
    db.session.commit()
    assert throttles(user) == []
    assert len(audit_events("account.password_reset", user.id)) == 1
