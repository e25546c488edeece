"""Test data factories: plain functions that add rows to the current session."""

from __future__ import annotations

import itertools
from datetime import timedelta

from campaign.accounts.models import User
from campaign.actions.models import Action, ActionStatus
from campaign.core.models import utcnow
from campaign.core.passwords import hash_password
from campaign.extensions import db
from campaign.groups.models import Group, GroupStatus, Membership, Role

PASSWORD = "correct horse battery"  # noqa: S105
_counter = itertools.count(1)


def user(
    email: str | None = None,
    *,
    password: str = PASSWORD,
    confirmed: bool = True,
    admin: bool = False,
    name: str = "",
) -> User:
    n = next(_counter)
    row = User(
        email=(email or f"person{n}@example.org").lower(),
        password_hash=hash_password(password),
        display_name=name or f"Person {n}",
        email_confirmed_at=utcnow() if confirmed else None,
        is_admin=admin,
    )
    db.session.add(row)
    db.session.flush()
    return row


def group(
    name: str | None = None,
    *,
    organiser: User | None = None,
    status: GroupStatus = GroupStatus.APPROVED,
    area: str = "Riverside",
) -> Group:
    n = next(_counter)
    row = Group(
        slug=f"group-{n}",
        name=name or f"Group {n}",
        area=area,
        description="A test group.",
        contact_email=f"group{n}@example.org",
        status=status,
        require_caseworker_2fa=True,
    )
    db.session.add(row)
    db.session.flush()
    if organiser is not None:
        member(row, organiser, Role.ORGANISER)
    return row


def member(group: Group, user: User, role: Role = Role.MEMBER) -> Membership:
    row = Membership(group_id=group.id, user_id=user.id, role=role)
    db.session.add(row)
    db.session.flush()
    return row


def published_action(group: Group, **overrides: object) -> Action:
    """A published action three days ahead with fifty places, in the group's hands."""
    starts = utcnow() + timedelta(days=3)
    values: dict[str, object] = {
        "title": "Visit the Trust board", "starts_at": starts,
        "ends_at": starts + timedelta(hours=2), "status": ActionStatus.PUBLISHED,
        "place_name": "Board room", "capacity": 50,
    }  # fmt: skip
    row = Action(group_id=group.id, **(values | overrides))
    db.session.add(row)
    db.session.flush()
    return row
