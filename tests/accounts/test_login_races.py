"""Logins racing each other, with real threads and connections: every failure counts and
a recovery code is spent once. On PostgreSQL when TEST_DATABASE_URL points at one (a
throwaway database is made), and on a SQLite file."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select

from campaign import create_app
from campaign.accounts import services
from campaign.accounts.models import LoginThrottle, RecoveryCode, User
from campaign.core import migrations
from campaign.core.passwords import hash_password
from campaign.extensions import db
from tests.conftest import throwaway_database


@pytest.fixture(params=["sqlite", "postgresql"])
def race_app(request, tmp_path) -> Iterator:
    with throwaway_database(request.param, tmp_path) as url:
        app = create_app(
            "testing",
            {
                "SQLALCHEMY_DATABASE_URI": url,
                "SQLALCHEMY_ENGINE_OPTIONS": {"pool_size": 12, "pool_pre_ping": True},
                "MAIL_FILE_DIR": str(tmp_path / "mail"),
                "LOGIN_MAX_FAILURES": 1000,
                "LOGIN_ACCOUNT_MAX_FAILURES": 1000,
            },
        )
        with app.app_context():
            migrations.upgrade("head")
            user = User(email="ana@example.org", password_hash=hash_password("x" * 12))
            db.session.add(user)
            db.session.commit()
            app.config["RACE_USER_ID"] = user.id
        yield app
        with app.app_context():
            db.engine.dispose()


def _in_request(app, work):
    """Run ``work(user)`` as one POST request would: its own session, then commit."""
    with app.test_request_context(method="POST"):
        user = db.session.get(User, app.config["RACE_USER_ID"])
        result = work(user)
        db.session.commit()
        return result


@pytest.mark.slow
def test_simultaneous_failures_from_one_address_are_all_counted(race_app):
    def fail(_n: int) -> None:
        _in_request(race_app, lambda user: services.record_failure(user, "203.0.113.5"))

    with ThreadPoolExecutor(max_workers=10) as pool:
        list(pool.map(fail, range(40)))

    with race_app.app_context():
        [throttle] = db.session.scalars(select(LoginThrottle)).all()
        user = db.session.get(User, race_app.config["RACE_USER_ID"])
        assert throttle.failures == 40
        assert user.failed_logins == 40


@pytest.mark.slow
def test_a_recovery_code_is_spent_once_even_at_the_same_moment(race_app):
    def setup(user: User) -> list[str]:
        user.totp_enabled = True
        return services._new_recovery_codes(user)

    codes = _in_request(race_app, setup)

    def use(_n: int) -> bool:
        return _in_request(race_app, lambda user: services.use_recovery_code(user, codes[0]))

    with ThreadPoolExecutor(max_workers=10) as pool:
        outcomes = list(pool.map(use, range(10)))

    assert outcomes.count(True) == 1
    with race_app.app_context():
        used = db.session.scalars(select(RecoveryCode).where(RecoveryCode.used_at.is_not(None)))
        assert len(used.all()) == 1


@pytest.mark.slow
def test_one_totp_code_sent_twice_at_the_same_moment_is_accepted_once(race_app):
    import pyotp

    def setup(user: User) -> str:
        services.begin_totp_setup(user)
        user.totp_enabled = True
        db.session.flush()
        return services.totp_secret_for_display(user)

    code = pyotp.TOTP(_in_request(race_app, setup)).now()

    def second_step(n: int) -> bool:
        return _in_request(
            race_app, lambda user: services.check_second_factor(user, code, f"198.51.100.{n}").ok
        )

    with ThreadPoolExecutor(max_workers=10) as pool:
        outcomes = list(pool.map(second_step, range(10)))

    assert outcomes.count(True) == 1


@pytest.mark.slow
def test_simultaneous_failures_from_many_addresses_are_all_counted(race_app):
    """Each inserts its own throttle row (a key-share lock on the user row): no deadlock."""

    def fail(n: int) -> None:
        _in_request(race_app, lambda user: services.record_failure(user, f"203.0.113.{n}"))

    with ThreadPoolExecutor(max_workers=10) as pool:
        list(pool.map(fail, range(40)))

    with race_app.app_context():
        assert len(db.session.scalars(select(LoginThrottle)).all()) == 40
        assert db.session.get(User, race_app.config["RACE_USER_ID"]).failed_logins == 40
