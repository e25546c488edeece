"""The public action lists, an action's page, the calendar feed, and who may see what."""

from __future__ import annotations

from datetime import timedelta

import pytest
from icalendar import Calendar

from campaign.actions.models import Action, ActionKind, ActionSignup, ActionStatus, SignupStatus
from campaign.core.models import utcnow
from campaign.extensions import db
from campaign.groups.models import GroupStatus
from tests.conftest import login


def _action(group, title: str = "Stall at the market", days: float = 3, **kwargs) -> Action:
    starts = utcnow() + timedelta(days=days)
    values = {"status": ActionStatus.PUBLISHED, "ends_at": starts + timedelta(hours=2),
              "area": "Riverside", "kind": ActionKind.STALL} | kwargs  # fmt: skip
    row = Action(group_id=group.id, title=title, starts_at=starts, **values)
    db.session.add(row)
    db.session.flush()
    return row


def _going(action: Action, n: int, status: SignupStatus = SignupStatus.CONFIRMED) -> None:
    for i in range(n):
        db.session.add(ActionSignup(action_id=action.id, group_id=action.group_id,
                                    email=f"{status}{i}-{action.id}@example.org",
                                    status=status))  # fmt: skip
    db.session.flush()


@pytest.fixture
def groups(make):
    return {
        "a": make.group("Riverside Health Justice", area="Riverside"),
        "b": make.group("Hillside Care", area="Hillside"),
        "pending": make.group("Pending Group", status=GroupStatus.PENDING),
    }


def test_the_platform_list_shows_upcoming_published_actions_of_approved_groups(client, groups):
    stall = _action(groups["a"], "Stall at the market")
    _going(stall, 3)
    _going(stall, 2, SignupStatus.WAITLISTED)
    _action(groups["b"], "Hillside protest", kind=ActionKind.PROTEST, area="Hillside")
    _action(groups["a"], "Secret draft", status=ActionStatus.DRAFT)
    _action(groups["a"], "Called off", status=ActionStatus.CANCELLED)
    _action(groups["a"], "Last week", days=-7)
    _action(groups["pending"], "Unapproved group's action")
    response = client.get("/actions")
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    assert "Stall at the market" in body and "Hillside protest" in body
    assert "3 going" in body and "Riverside Health Justice" in body
    for hidden in ("Secret draft", "Called off", "Last week", "Unapproved group"):
        assert hidden not in body


def test_the_lists_filter_by_kind_and_area(client, groups):
    _action(groups["a"], "Riverside stall")
    _action(groups["b"], "Hillside protest", kind=ActionKind.PROTEST, area="Hillside")
    body = client.get("/actions?kind=protest").get_data(as_text=True)
    assert "Hillside protest" in body and "Riverside stall" not in body
    body = client.get("/actions?area=riverside").get_data(as_text=True)
    assert "Riverside stall" in body and "Hillside protest" not in body
    body = client.get("/actions?kind=protest&area=Riverside").get_data(as_text=True)
    assert "No upcoming actions match" in body


@pytest.mark.parametrize(
    ("query", "message"),
    [("kind=picnic", "Not a valid choice"), ("area=" + "x" * 500, "under 120 characters"),
     ("area=%3Cscript%3E", "remove the &lt; and &gt; characters")],
)  # fmt: skip
def test_bad_filters_are_a_clear_400(client, groups, query, message):
    for url in ("/actions", f"/g/{groups['a'].slug}/actions"):
        response = client.get(f"{url}?{query}")
        assert response.status_code == 400
        body = response.get_data(as_text=True)
        assert message in body and "<script>" not in body


def test_the_lists_are_paginated_with_one_count_query(app, client, groups, monkeypatch):
    monkeypatch.setitem(app.config, "PER_PAGE", 2)
    for n in range(5):
        _going(_action(groups["a"], f"Action number {n}", days=n + 1), n)
    first = client.get("/actions?area=Riverside").get_data(as_text=True)
    assert "Action number 0" in first and "Action number 1" in first
    assert "Action number 2" not in first and "Page 1 of 3" in first
    assert "page=2" in first and "area=Riverside" in first  # the filter is kept
    third = client.get(f"/g/{groups['a'].slug}/actions?page=3").get_data(as_text=True)
    assert "Action number 4" in third and "4 going" in third and "Action number 0" not in third

    from sqlalchemy import event

    statements: list[str] = []
    engine = db.engine

    def count(conn, cursor, statement, *args):  # noqa: ANN001, ANN002
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        client.get("/actions")
    finally:
        event.remove(engine, "before_cursor_execute", count)
    signup_queries = [s for s in statements if "FROM action_signups" in s]
    assert len(signup_queries) == 1  # one grouped count for the page, not one per action


def test_the_group_list_has_only_its_actions_and_a_feed_link(client, groups):
    _action(groups["a"], "Riverside stall")
    _action(groups["b"], "Hillside protest")
    body = client.get(f"/g/{groups['a'].slug}/actions").get_data(as_text=True)
    assert "Riverside stall" in body and "Hillside protest" not in body
    assert f"/g/{groups['a'].slug}/actions.ics" in body
    assert f"/g/{groups['a'].slug}/actions" in client.get(f"/g/{groups['a'].slug}").get_data(
        as_text=True
    )


def test_the_action_page(client, groups):
    action = _action(groups["a"], "Visit the board", capacity=10,
                     description="Bring **banners**. <script>alert(1)</script>",
                     accessibility="Step-free entrance at the side.",
                     place_name="Town Hall", place_public=True)  # fmt: skip
    _going(action, 4)
    body = client.get(f"/g/{groups['a'].slug}/actions/{action.id}").get_data(as_text=True)
    assert "<strong>banners</strong>" in body and "<script>alert(1)" not in body
    assert "Step-free entrance" in body and "Town Hall" in body
    assert "6 places left" in body and "Add to calendar" in body
    assert "What access needs do you have? (optional)" in body
    assert 'name="website"' in body


def test_a_full_open_action_offers_the_waitlist(client, groups):
    action = _action(groups["a"], "Popular", capacity=2)
    _going(action, 2)
    body = client.get(f"/g/{groups['a'].slug}/actions/{action.id}").get_data(as_text=True)
    assert "Full: waitlist open" in body and "Put me on the waitlist" in body


def test_full_without_waitlist_after_it_started(client, groups):
    action = _action(groups["a"], "Started", days=-0.01, capacity=1)
    _going(action, 1)
    body = client.get(f"/g/{groups['a'].slug}/actions/{action.id}").get_data(as_text=True)
    assert "Full" in body and "waitlist open" not in body and 'name="email"' not in body


def test_drafts_unapproved_groups_and_other_groups_ids_are_404(client, make, groups):
    draft = _action(groups["a"], "Secret draft", status=ActionStatus.DRAFT)
    pending = _action(groups["pending"], "Pending action")
    other = _action(groups["b"], "Hillside protest")
    slug_a, slug_p = groups["a"].slug, groups["pending"].slug
    urls = [
        f"/g/{slug_a}/actions/{draft.id}",
        f"/g/{slug_a}/actions/{draft.id}/calendar.ics",
        f"/g/{slug_a}/actions/{draft.id}/signed-up",
        f"/g/{slug_a}/actions/{other.id}",  # group B's action under group A's address
        f"/g/{slug_a}/actions/{other.id}/calendar.ics",
        f"/g/{slug_p}/actions/{pending.id}",
        f"/g/{slug_p}/actions/{pending.id}/calendar.ics",
        f"/g/{slug_p}/actions",
        f"/g/{slug_p}/actions.ics",
        "/g/no-such-group/actions",
    ]
    for url in urls:
        assert client.get(url).status_code == 404, url
    assert client.post(f"/g/{slug_a}/actions/{draft.id}").status_code in (400, 404)
    # Logged in as group B's organiser changes nothing.
    organiser = make.user()
    make.member(groups["b"], organiser)
    login(client, organiser)
    for url in urls:
        assert client.get(url).status_code == 404, url


def test_the_signed_up_page_is_the_same_whatever_happened(client, groups):
    action = _action(groups["a"])
    url = f"/g/{groups['a'].slug}/actions/{action.id}/signed-up"
    pages = {client.get(f"{url}{q}").get_data(as_text=True) for q in ("", "?outcome=updated")}
    assert len(pages) == 1


def test_the_group_feed_has_only_its_published_actions(client, groups):
    _action(groups["a"], "Upcoming stall")
    _action(groups["a"], "Three weeks ago", days=-21)
    _action(groups["a"], "Two months ago", days=-60)
    _action(groups["a"], "Draft", status=ActionStatus.DRAFT)
    _action(groups["a"], "Called off", status=ActionStatus.CANCELLED)
    _action(groups["b"], "Other group")
    _action(groups["a"], "Private place", place_public=False, address="Secret Street")
    response = client.get(f"/g/{groups['a'].slug}/actions.ics")
    assert response.status_code == 200 and response.mimetype == "text/calendar"
    calendar = Calendar.from_ical(response.get_data())
    titles = sorted(str(event["summary"]) for event in calendar.walk("VEVENT"))
    assert titles == ["Private place", "Three weeks ago", "Upcoming stall"]
    assert "Secret Street" not in response.get_data(as_text=True)
