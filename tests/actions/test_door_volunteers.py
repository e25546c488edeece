"""Volunteers run door check-in for the actions whose organiser chose it (issue 15, point 10).

``load_group(slug, role=Role.VOLUNTEER)`` lets volunteers (and caseworkers) in; the
action's own "volunteers can run door check-in" setting, chosen on the edit page,
decides the rest. Members never can; organisers always can.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from campaign.actions.models import Action, ActionSignup, ActionStatus, SignupStatus
from campaign.extensions import db
from campaign.groups.models import Role
from tests.actions.test_organiser_pages import form_data
from tests.conftest import csrf_token, login, post

NEEDS = "Needs a chair near the door"


@pytest.fixture
def team(make):
    organiser, volunteer = make.user(), make.user()
    caseworker, member = make.user(), make.user()
    group = make.group(organiser=organiser)
    make.member(group, volunteer, Role.VOLUNTEER)
    make.member(group, caseworker, Role.CASEWORKER)
    make.member(group, member, Role.MEMBER)
    start = datetime.now(UTC) + timedelta(hours=1)
    action = Action(group_id=group.id, title="Stall at the market", starts_at=start,
                    ends_at=start + timedelta(hours=2), status=ActionStatus.PUBLISHED,
                    place_name="Market square")  # fmt: skip
    db.session.add(action)
    db.session.flush()
    signup = ActionSignup(action_id=action.id, group_id=group.id, email="ana@example.org",
                          name="Ana Silva", access_needs=NEEDS,
                          status=SignupStatus.CONFIRMED)  # fmt: skip
    db.session.add(signup)
    db.session.commit()
    return {"group": group, "action": action, "signup": signup, "organiser": organiser,
            "volunteer": volunteer, "caseworker": caseworker, "member": member}  # fmt: skip


def _door_urls(team) -> dict[str, str]:
    base = f"/g/{team['group'].slug}/manage/actions/{team['action'].id}/check-in"
    return {"list": base, "here": f"{base}/{team['signup'].id}", "walk_in": f"{base}/walk-in"}


def _checked_in(team) -> bool:
    return db.session.scalar(
        select(ActionSignup.checked_in_at).where(ActionSignup.id == team["signup"].id)
    ) is not None  # fmt: skip


def _set_volunteers(team, on: bool) -> None:
    action = db.session.get(Action, team["action"].id)
    action.volunteers_check_in = on
    db.session.commit()


def test_the_organiser_chooses_it_on_the_edit_page(client, team):
    login(client, team["organiser"])
    edit = f"/g/{team['group'].slug}/manage/actions/{team['action'].id}/edit"
    page = client.get(edit).get_data(as_text=True)
    assert "Volunteers can run door check-in for this action" in page
    day = (datetime.now() + timedelta(days=3)).strftime("%Y-%m-%d")
    data = form_data(start_date=day, end_date=day, volunteers_check_in="y")
    assert post(client, edit, data).status_code == 302
    assert db.session.get(Action, team["action"].id).volunteers_check_in is True
    tag = re.search(r"<input[^>]*name=\"volunteers_check_in\"[^>]*>", client.get(edit).text)
    assert tag and "checked" in tag.group(0)
    data.pop("volunteers_check_in")
    assert post(client, edit, data).status_code == 302
    assert db.session.get(Action, team["action"].id).volunteers_check_in is False


@pytest.mark.parametrize("who", ["volunteer", "caseworker"])
def test_volunteers_run_the_door_when_the_organiser_chose_it(client, team, who):
    _set_volunteers(team, True)
    login(client, team[who])
    urls = _door_urls(team)
    dashboard = client.get(f"/g/{team['group'].slug}/dashboard").get_data(as_text=True)
    assert "Door check-in" in dashboard
    door = client.get(f"/g/{team['group'].slug}/door").get_data(as_text=True)
    assert "Stall at the market" in door and urls["list"] in door
    page = client.get(urls["list"])
    body = page.get_data(as_text=True)
    assert page.status_code == 200 and "Ana Silva" in body and NEEDS in body
    assert "ana@example.org" not in body
    assert post(client, urls["here"]).status_code == 302
    assert _checked_in(team)
    walk_in = post(client, urls["walk_in"], {"name": "Bea Walk-in", "email": ""})
    assert walk_in.status_code == 302
    names = db.session.scalars(
        select(ActionSignup.name).where(ActionSignup.action_id == team["action"].id)
    ).all()
    assert "Bea Walk-in" in names


def test_without_the_organisers_choice_volunteers_are_refused(client, team):
    login(client, team["volunteer"])
    urls = _door_urls(team)
    assert client.get(urls["list"]).status_code == 403
    assert post(client, urls["here"]).status_code == 403
    assert post(client, urls["walk_in"], {"name": "Bea", "email": ""}).status_code == 403
    assert not _checked_in(team)
    door = client.get(f"/g/{team['group'].slug}/door").get_data(as_text=True)
    assert "No action needs you at the door" in door
    # The rest of the action stays the organisers'.
    manage = f"/g/{team['group'].slug}/manage/actions/{team['action'].id}"
    for path in (manage, f"{manage}/signups", f"{manage}/signups.csv", f"{manage}/edit"):
        assert client.get(path).status_code == 403, path


def test_a_draft_or_cancelled_action_is_not_open_to_volunteers(client, team):
    _set_volunteers(team, True)
    login(client, team["volunteer"])
    for status in (ActionStatus.DRAFT, ActionStatus.CANCELLED):
        action = db.session.get(Action, team["action"].id)
        action.status = status
        db.session.commit()
        assert client.get(_door_urls(team)["list"]).status_code == 403, status


def test_members_never_run_the_door(client, team):
    _set_volunteers(team, True)
    login(client, team["member"])
    urls = _door_urls(team)
    assert client.get(urls["list"]).status_code == 403
    assert post(client, urls["here"]).status_code == 403
    assert client.get(f"/g/{team['group'].slug}/door").status_code == 403
    dashboard = client.get(f"/g/{team['group'].slug}/dashboard").get_data(as_text=True)
    assert "Door check-in" not in dashboard
    assert not _checked_in(team)


def test_organisers_always_can_and_another_groups_volunteer_cannot(client, team, make):
    login(client, team["organiser"])
    assert client.get(_door_urls(team)["list"]).status_code == 200
    _set_volunteers(team, True)
    stranger = make.user()
    other = make.group()
    make.member(other, stranger, Role.VOLUNTEER)
    db.session.commit()
    other_client = client.application.test_client()
    login(other_client, stranger)
    assert other_client.get(_door_urls(team)["list"]).status_code == 404
    token = csrf_token(other_client)
    assert (
        other_client.post(_door_urls(team)["here"], data={"csrf_token": token}).status_code == 404
    )


def test_the_role_hint_says_what_roles_do(client, team):
    login(client, team["organiser"])
    body = client.get(f"/g/{team['group'].slug}/members").get_data(as_text=True)
    assert "run door check-in at actions whose organiser allows it" in body
    assert "rotas" not in body  # no rota capability exists yet
    assert "casework (with two-factor login) is not open yet" in body
