"""200 sign-ups racing for 50 places: exactly 50 confirmed, 150 waitlisted, no duplicates.

Real threads, each with its own connection and transaction, against a real database:
PostgreSQL when TEST_DATABASE_URL points at one (a throwaway database is made), and a
SQLite file otherwise.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from campaign import create_app
from campaign.actions import services
from campaign.actions.models import Action, ActionSignup, ActionStatus, SignupStatus
from campaign.core import migrations
from campaign.core.models import utcnow
from campaign.extensions import db
from campaign.groups.models import Group, GroupStatus
from tests.conftest import throwaway_database


@pytest.fixture(params=["sqlite", "postgresql"])
def race_database(request, tmp_path) -> Iterator[str]:
    with throwaway_database(request.param, tmp_path) as url:
        yield url


@pytest.mark.slow
def test_two_hundred_sign_ups_for_fifty_places(race_database, tmp_path):
    app = create_app(
        "testing",
        {
            "SQLALCHEMY_DATABASE_URI": race_database,
            "SQLALCHEMY_ENGINE_OPTIONS": {"pool_size": 20, "pool_pre_ping": True},
            "MAIL_FILE_DIR": str(tmp_path / "mail"),
            "MAIL_STRANGER_DAILY_LIMIT": 10,
        },
    )
    with app.app_context():
        migrations.upgrade("head")
        group = Group(slug="race", name="Race", area="Here", contact_email="r@example.org",
                      status=GroupStatus.APPROVED)  # fmt: skip
        db.session.add(group)
        db.session.flush()
        action = Action(group_id=group.id, title="Board meeting", capacity=50,
                        starts_at=utcnow() + timedelta(days=2),
                        ends_at=utcnow() + timedelta(days=2, hours=2),
                        status=ActionStatus.PUBLISHED)  # fmt: skip
        db.session.add(action)
        db.session.commit()
        action_id = action.id

    def sign_up(n: int) -> str:
        # A POST, as the sign-up form is: SQLite writers then take the lock up front.
        with app.test_request_context(method="POST"):
            target = db.session.get(Action, action_id)
            result = services.sign_up(target, email=f"p{n}@example.org", name=f"Person {n}")
            db.session.commit()
            return result.outcome

    with ThreadPoolExecutor(max_workers=20) as pool:
        outcomes = list(pool.map(sign_up, range(200)))

    assert outcomes.count("confirmed") == 50 and outcomes.count("waitlisted") == 150
    with app.app_context():
        by_status = dict(
            db.session.execute(
                select(ActionSignup.status, func.count()).group_by(ActionSignup.status)
            ).all()
        )
        assert by_status == {SignupStatus.CONFIRMED: 50, SignupStatus.WAITLISTED: 150}
        distinct = db.session.scalar(select(func.count(func.distinct(ActionSignup.email))))
        assert distinct == 200
        # Waitlist order is sign-up order: the first waiting was the 51st to get in.
        first_waiting = db.session.scalar(
            select(ActionSignup)
            .where(ActionSignup.status == SignupStatus.WAITLISTED)
            .order_by(ActionSignup.id)
        )
        assert first_waiting.id > max(
            db.session.scalars(
                select(ActionSignup.id).where(ActionSignup.status == SignupStatus.CONFIRMED)
            )
        )
        db.engine.dispose()
