"""Demo data for the embedded default: one running group, one waiting for approval.

All text here is our own, invented for the demo; no real person or group.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from campaign.accounts.models import User
from campaign.core.models import utcnow
from campaign.core.passwords import hash_password
from campaign.extensions import db
from campaign.groups.models import Group, GroupStatus, Membership, Role

DEMO_ADMIN_EMAIL = "admin@example.org"
DEMO_PASSWORD = "demo-password-2026"  # noqa: S105 - printed by quickstart, demo only

RIVERSIDE_DESCRIPTION = """\
We are neighbours, patients, nurses and migrants in Riverside who believe that nobody
should be turned away from a hospital, or chased for a bill, because of their
immigration status.

What we do:

- go along with members to appointments and to meetings with the hospital Trust, so
  nobody faces the overseas visitors office alone;
- help people check whether they are exempt from charges, and push back when a bill
  is wrong;
- take our members' stories (with their permission, and without their names) to the
  Trust board, the ICB and the council.

We meet on the first Tuesday of each month. Everyone is welcome.
"""

NORTHFIELD_DESCRIPTION = """\
A new group of health workers and community organisers in Northfield. We want to run
a stall outside the general hospital every month and to ask our councillors to back
free care for everyone.
"""

PEOPLE = [
    ("organiser@example.org", "Amara", Role.ORGANISER),
    ("caseworker@example.org", "Tomasz", Role.CASEWORKER),
    ("volunteer@example.org", "Leila", Role.VOLUNTEER),
    ("member@example.org", "Joe", Role.MEMBER),
]


@dataclass
class DemoSummary:
    organiser_email: str
    password: str
    created: bool

    def describe(self) -> str:
        state = "Demo data loaded." if self.created else "Demo data was already there."
        return f"{state} Organiser: {self.organiser_email} / {self.password}"


def _user(email: str, name: str) -> User:
    user = db.session.scalar(select(User).where(User.email == email))
    if user is None:
        user = User(
            email=email,
            display_name=name,
            password_hash=hash_password(DEMO_PASSWORD),
            email_confirmed_at=utcnow(),
        )
        db.session.add(user)
        db.session.flush()
    return user


def load_demo() -> DemoSummary:
    """Create the demo group and people unless they exist already. Flushes, never commits."""
    if db.session.scalar(select(Group).where(Group.slug == "riverside-health-justice")):
        return DemoSummary(PEOPLE[0][0], DEMO_PASSWORD, created=False)
    riverside = Group(
        slug="riverside-health-justice",
        name="Riverside Health Justice",
        area="Riverside",
        description=RIVERSIDE_DESCRIPTION,
        contact_email="hello@riverside.example.org",
        status=GroupStatus.APPROVED,
        decided_at=utcnow(),
    )
    db.session.add(riverside)
    db.session.flush()
    for email, name, role in PEOPLE:
        user = _user(email, name)
        db.session.add(Membership(group_id=riverside.id, user_id=user.id, role=role))
    applicant = _user("northfield@example.org", "Priya")
    northfield = Group(
        slug="northfield-care-for-all",
        name="Northfield Care For All",
        area="Northfield",
        description=NORTHFIELD_DESCRIPTION,
        contact_email="northfield@example.org",
        status=GroupStatus.PENDING,
        applied_by_id=applicant.id,
    )
    db.session.add(northfield)
    db.session.flush()
    db.session.add(Membership(group_id=northfield.id, user_id=applicant.id, role=Role.ORGANISER))
    db.session.flush()
    return DemoSummary(PEOPLE[0][0], DEMO_PASSWORD, created=True)
