"""Demo data for the embedded default: one running group, one waiting for approval.

All text here is our own, invented for the demo; no real person or group.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select

from campaign.accounts.models import User
from campaign.actions.models import Action, ActionKind, ActionStatus
from campaign.core.models import utcnow
from campaign.core.passwords import hash_password
from campaign.extensions import db
from campaign.groups.models import Group, GroupStatus, Membership, Role
from campaign.people.models import ConsentAction, ConsentMethod, Tag, UpdatesStatus
from campaign.people.services import record_consent, updates_wording, upsert_supporter

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
    _demo_action(riverside)
    _demo_supporters(riverside)
    return DemoSummary(PEOPLE[0][0], DEMO_PASSWORD, created=True)


ACTION_DESCRIPTION = """\
The hospital Trust's board meets in public. We will go together, sit in the public
seats, and ask one question: how many people were sent a bill for their care last year,
and how many of them were later found to be exempt?

We meet outside the main entrance fifteen minutes before. No experience needed.
"""


def _demo_action(group: Group) -> None:
    """A published action three weeks ahead, with room for twenty."""
    starts = (utcnow() + timedelta(days=21)).replace(hour=13, minute=0, second=0, microsecond=0)
    db.session.add(
        Action(
            group_id=group.id,
            title="Ask the Trust board about charging",
            kind=ActionKind.BOARD_MEETING,
            description=ACTION_DESCRIPTION,
            starts_at=starts,
            ends_at=starts + timedelta(hours=2),
            place_name="Riverside General Hospital, main entrance",
            area="Riverside",
            accessibility="Step-free access through the main entrance. Seating available.",
            capacity=20,
            status=ActionStatus.PUBLISHED,
            published_at=utcnow(),
        )
    )


SUPPORTERS = [
    ("kofi@example.org", "Kofi", ["nurses"]),
    ("maria@example.org", "Maria", ["stall"]),
    ("sam@example.org", "Sam", ["nurses", "stall"]),
]


def _demo_supporters(group: Group) -> None:
    """Supporters who agreed in person at a stall, so the lists are not empty."""
    for email, name, tags in SUPPORTERS:
        supporter, _ = upsert_supporter(group, email, first_name=name, source="demo")
        for tag_name in tags:
            tag = db.session.scalar(
                select(Tag).where(Tag.group_id == group.id, Tag.name == tag_name)
            )
            if tag is None:
                tag = Tag(group_id=group.id, name=tag_name)
                db.session.add(tag)
                db.session.flush()
            supporter.tags.append(tag)
        supporter.updates_status = UpdatesStatus.SUBSCRIBED
        supporter.updates_confirmed_at = utcnow()
        record_consent(
            supporter, ConsentAction.GRANTED, ConsentMethod.IN_PERSON,
            wording=updates_wording(group), detail="demo: sign-up sheet at the stall",
        )  # fmt: skip
    db.session.flush()
