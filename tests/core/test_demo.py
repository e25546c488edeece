"""The demo data a newcomer sees after the quick start."""

from __future__ import annotations

from sqlalchemy import func, select

from campaign.actions.models import Action, ActionStatus
from campaign.demo import load_demo
from campaign.extensions import db
from campaign.groups.models import Group
from campaign.people.models import Supporter, Tag
from campaign.people.services import count_recipients


def test_the_demo_loads_once_with_a_running_group(session):
    summary = load_demo()
    assert summary.created
    riverside = db.session.scalar(select(Group).where(Group.slug == "riverside-health-justice"))
    assert riverside.is_approved
    action = db.session.scalar(select(Action).where(Action.group_id == riverside.id))
    assert action.status == ActionStatus.PUBLISHED and action.capacity == 20
    assert count_recipients(riverside) == 3
    nurses = db.session.scalar(
        select(Tag.id).where(Tag.group_id == riverside.id, Tag.name == "nurses")
    )
    assert count_recipients(riverside, {"kind": "tag", "tag_id": nurses}) == 2
    again = load_demo()
    assert not again.created
    assert db.session.scalar(select(func.count(Supporter.id))) == 3
