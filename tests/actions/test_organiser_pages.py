"""Organisers' action pages: create, edit, publish, cancel, bad input and clock changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from campaign.actions.models import Action, ActionSignup, ActionStatus, SignupStatus
from campaign.extensions import db
from campaign.groups.models import Role
from tests.conftest import login, mail_to, post

SCRIPT = "<script>alert('x')</script>"


def _future(days: int = 30) -> datetime:
    return datetime.now(UTC) + timedelta(days=days)


def form_data(**overrides: str) -> dict[str, str]:
    day = (datetime.now() + timedelta(days=30)).strftime("%Y-%m-%d")
    data = {
        "title": "Save our A&E",
        "kind": "protest",
        "description": "Meet at the **front entrance**.",
        "start_date": day,
        "start_time": "12:00",
        "end_date": day,
        "end_time": "14:00",
        "place_name": "Riverside Hospital",
        "address": "1 River Road",
        "area": "Riverside",
        "place_public": "y",
        "accessibility": "Step-free.",
        "capacity": "",
        "reminder_hours": "24",
    }
    return data | overrides


@pytest.fixture
def organiser(client, make):
    user = make.user()
    group = make.group(organiser=user)
    login(client, user)
    return user, group


def make_action(group, **kwargs) -> Action:
    values = {
        "group_id": group.id, "title": "Rally", "status": ActionStatus.PUBLISHED,
        "starts_at": _future(), "ends_at": _future() + timedelta(hours=2),
        "place_name": "Hall",
    } | kwargs  # fmt: skip
    action = Action(**values)
    db.session.add(action)
    db.session.flush()
    return action


def add_signup(action, email, status=SignupStatus.CONFIRMED, **kwargs) -> ActionSignup:
    name = kwargs.pop("name", email.split("@")[0])
    signup = ActionSignup(action_id=action.id, group_id=action.group_id, email=email,
                          status=status, name=name, **kwargs)  # fmt: skip
    db.session.add(signup)
    db.session.flush()
    return signup


def test_create_edit_publish(client, organiser):
    user, group = organiser
    response = post(client, f"/g/{group.slug}/manage/actions/new", form_data(capacity="20"))
    assert response.status_code == 302
    action = db.session.scalar(select(Action).where(Action.group_id == group.id))
    assert action.status == ActionStatus.DRAFT
    assert action.capacity == 20 and action.kind == "protest"
    page = client.get(response.headers["Location"])
    assert page.status_code == 200 and "Save our A&amp;E" in page.get_data(as_text=True)

    response = post(client, f"/g/{group.slug}/manage/actions/{action.id}/edit",
                    form_data(title="Save our A&E now", capacity=""))  # fmt: skip
    assert response.status_code == 302
    db.session.refresh(action)
    assert action.title == "Save our A&E now" and action.capacity is None

    post(client, f"/g/{group.slug}/manage/actions/{action.id}/publish")
    db.session.refresh(action)
    assert action.status == ActionStatus.PUBLISHED and action.published_at is not None
    listing = client.get(f"/g/{group.slug}/manage/actions").get_data(as_text=True)
    assert "Save our A&amp;E now" in listing and "New action" in listing


def test_edit_form_shows_saved_values(client, organiser):
    _, group = organiser
    action = make_action(group, capacity=12)
    body = client.get(f"/g/{group.slug}/manage/actions/{action.id}/edit").get_data(as_text=True)
    assert 'value="12"' in body and 'value="Rally"' in body


def test_online_action_needs_an_https_link(client, organiser):
    _, group = organiser
    url = f"/g/{group.slug}/manage/actions/new"
    response = post(client, url, form_data(is_online="y", online_url="http://meet.example"))
    assert response.status_code == 422
    assert "https://" in response.get_data(as_text=True)
    response = post(client, url, form_data(is_online="y", online_url="https://meet.example/x"))
    assert response.status_code == 302
    action = db.session.scalar(select(Action).where(Action.group_id == group.id))
    assert action.is_online and action.place_name == ""


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"start_date": "2020-01-01", "end_date": "2020-01-01"}, "in the past"),
        ({"end_time": "11:00"}, "end must be after the start"),
        ({"capacity": "0"}, "1 or more"),
        ({"capacity": "-5"}, "1 or more"),
        ({"capacity": "lots"}, "whole number"),
        ({"title": "x" * 20_000}, "under 160"),
        ({"description": "x" * 20_001}, "under 20000"),
        ({"accessibility": "x" * 2_001}, "under 2000"),
        ({"title": SCRIPT}, "&lt; and &gt;"),
        ({"title": ""}, "Give the action a title"),
        ({"reminder_hours": "500"}, "1 to 168"),
        ({"kind": "nonsense"}, "Not a valid choice"),
        ({"start_date": "not a date"}, "Not a valid date"),
        ({"place_name": ""}, "Say where it happens"),
    ],
)
def test_bad_input_is_a_clear_422(client, organiser, overrides, message):
    _, group = organiser
    response = post(client, f"/g/{group.slug}/manage/actions/new", form_data(**overrides))
    body = response.get_data(as_text=True)
    assert response.status_code == 422
    assert message in body
    assert 'class="error"' in body
    assert SCRIPT not in body
    assert db.session.scalar(select(Action).where(Action.group_id == group.id)) is None


def _created(group) -> Action:
    return db.session.scalar(select(Action).where(Action.group_id == group.id))


@pytest.fixture
def early_2026(monkeypatch):
    """The clock-change dates below are fixed; make them lie in the future."""
    monkeypatch.setattr("campaign.actions.forms.utcnow",
                        lambda: datetime(2026, 1, 1, tzinfo=UTC))  # fmt: skip


def test_clock_change_in_autumn_is_gmt(client, organiser, early_2026):
    _, group = organiser
    post(client, f"/g/{group.slug}/manage/actions/new",
         form_data(start_date="2026-10-25", start_time="10:00", end_date="2026-10-25",
                   end_time="12:00"))  # fmt: skip
    assert _created(group).starts_at == datetime(2026, 10, 25, 10, 0, tzinfo=UTC)


def test_summer_time_is_an_hour_ahead(client, organiser, early_2026):
    _, group = organiser
    post(client, f"/g/{group.slug}/manage/actions/new",
         form_data(start_date="2026-03-29", start_time="10:00", end_date="2026-03-29",
                   end_time="12:00"))  # fmt: skip
    assert _created(group).starts_at == datetime(2026, 3, 29, 9, 0, tzinfo=UTC)


def test_a_time_the_clocks_skip_is_refused(client, organiser, early_2026):
    _, group = organiser
    response = post(client, f"/g/{group.slug}/manage/actions/new",
                    form_data(start_date="2026-03-29", start_time="01:30",
                              end_date="2026-03-29", end_time="12:00"))  # fmt: skip
    assert response.status_code == 422
    assert "does not exist" in response.get_data(as_text=True)
    assert _created(group) is None


def test_an_ambiguous_time_takes_the_first_occurrence(client, organiser, early_2026):
    _, group = organiser
    post(client, f"/g/{group.slug}/manage/actions/new",
         form_data(start_date="2026-10-25", start_time="01:30", end_date="2026-10-25",
                   end_time="12:00"))  # fmt: skip
    assert _created(group).starts_at == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)


def test_more_places_move_the_waitlist_up(client, organiser):
    _, group = organiser
    action = make_action(group, capacity=1)
    add_signup(action, "first@example.org")
    waiting = [add_signup(action, f"wait{i}@example.org", SignupStatus.WAITLISTED)
               for i in range(3)]  # fmt: skip
    start = action.starts_at.astimezone(ZoneInfo("Europe/London"))
    end = action.ends_at.astimezone(ZoneInfo("Europe/London"))
    response = post(client, f"/g/{group.slug}/manage/actions/{action.id}/edit",
                    form_data(title="Rally", capacity="3",
                              start_date=start.strftime("%Y-%m-%d"),
                              start_time=start.strftime("%H:%M"),
                              end_date=end.strftime("%Y-%m-%d"),
                              end_time=end.strftime("%H:%M")))  # fmt: skip
    assert response.status_code == 302
    statuses = [db.session.get(ActionSignup, s.id).status for s in waiting]
    assert statuses == ["confirmed", "confirmed", "waitlisted"]
    assert [m.template for m in mail_to("wait0@example.org")] == ["action_place_offered"]
    assert mail_to("wait2@example.org") == []


def test_cancelling_emails_everyone_signed_up_and_waiting(client, organiser):
    _, group = organiser
    action = make_action(group, capacity=1)
    add_signup(action, "has-place@example.org")
    add_signup(action, "waiting@example.org", SignupStatus.WAITLISTED)
    add_signup(action, "gone@example.org", SignupStatus.CANCELLED)
    page = client.get(f"/g/{group.slug}/manage/actions/{action.id}/cancel")
    assert "2 people will be emailed" in page.get_data(as_text=True)
    db.session.refresh(action)
    assert action.status == ActionStatus.PUBLISHED  # the GET changed nothing
    response = post(client, f"/g/{group.slug}/manage/actions/{action.id}/cancel")
    assert response.status_code == 302
    db.session.refresh(action)
    assert action.status == ActionStatus.CANCELLED
    for address in ("has-place@example.org", "waiting@example.org"):
        assert [m.template for m in mail_to(address)] == ["action_cancelled"]
    assert mail_to("gone@example.org") == []


def test_members_who_are_not_organisers_get_403(client, make):
    group = make.group(organiser=make.user())
    member = make.user()
    make.member(group, member, Role.MEMBER)
    action = make_action(group)
    login(client, member)
    base = f"/g/{group.slug}/manage/actions"
    for url in (base, f"{base}/new", f"{base}/{action.id}", f"{base}/{action.id}/signups",
                f"{base}/{action.id}/signups.csv", f"{base}/{action.id}/check-in"):  # fmt: skip
        assert client.get(url).status_code == 403, url
    assert post(client, f"{base}/{action.id}/cancel").status_code == 403


def test_other_groups_organiser_gets_404(client, make):
    group_a = make.group(organiser=make.user())
    action = make_action(group_a)
    signup = add_signup(action, "secret@example.org")
    user_b = make.user()
    group_b = make.group(organiser=user_b)
    login(client, user_b)
    # Group A's action through group B's own pages is not found either.
    for slug in (group_a.slug, group_b.slug):
        base = f"/g/{slug}/manage/actions/{action.id}"
        assert client.get(base).status_code == 404
        assert client.get(f"{base}/signups").status_code == 404
        assert post(client, f"{base}/check-in/{signup.id}").status_code == 404
    db.session.refresh(signup)
    assert signup.checked_in_at is None
