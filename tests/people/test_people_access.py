"""Only the group's organisers reach its people: others get 404 (outsiders) or 403 (members)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from campaign.core.audit import AuditEvent
from campaign.extensions import db
from campaign.groups.models import Role
from campaign.people.models import Supporter, UpdatesStatus
from tests.conftest import csrf_token
from tests.people.organiser_helpers import make_team, supporter, text, user_client

SECRET = "secret-supporter@example.org"


@pytest.fixture
def setting(app, make):
    """Group A's organiser's team with two supporters, and group B with its organiser."""
    team = make_team(app)
    group_a = team["group"]
    secret = supporter(group_a, SECRET, first_name="Hidden", last_name="Person",
                       tags=["secret tag"], status=UpdatesStatus.SUBSCRIBED)  # fmt: skip
    twin = supporter(group_a, "twin-a@example.org", first_name="Twin")
    organiser_b = make.user()
    group_b = make.group("Group B", organiser=organiser_b)
    b_supporter = supporter(group_b, "b-supporter@example.org")
    db.session.commit()
    return {
        **team,
        "secret": secret,
        "twin": twin,
        "organiser_b": organiser_b,
        "group_b": group_b,
        "b_supporter": b_supporter,
    }


def _requests(slug: str, supporter_id: int, twin_email: str) -> list[tuple[str, str, dict]]:
    base = f"/g/{slug}/people"
    details = {"email": "taken@example.org", "first_name": "Taken", "tags": "x",
               "agreed_in_person": "y"}  # fmt: skip
    return [
        ("GET", base, {}),
        ("GET", f"{base}.csv", {}),
        ("GET", f"{base}/new", {}),
        ("POST", f"{base}/new", details),
        ("GET", f"{base}/{supporter_id}", {}),
        ("POST", f"{base}/{supporter_id}", details),
        ("POST", f"{base}/{supporter_id}/unsubscribe", {}),
        ("GET", f"{base}/{supporter_id}/export.json", {}),
        ("GET", f"{base}/{supporter_id}/erase", {}),
        ("POST", f"{base}/{supporter_id}/erase", {}),
        ("POST", f"{base}/merge", {"target_id": str(supporter_id), "other_email": twin_email}),
    ]


def _snapshot(group_id: int) -> list[tuple]:
    db.session.expire_all()
    rows = db.session.scalars(
        select(Supporter).where(Supporter.group_id == group_id).order_by(Supporter.id)
    )
    return [
        (r.id, r.email, r.first_name, r.updates_status, r.erased_at, [t.name for t in r.tags])
        for r in rows
    ]


def _audit_count() -> int:
    return db.session.scalar(select(func.count(AuditEvent.id)))


def _send(client, method: str, url: str, data: dict):
    if method == "GET":
        return client.get(url)
    return client.post(url, data=data | {"csrf_token": csrf_token(client)})


def test_an_organiser_of_another_group_gets_404_everywhere(app, setting):
    outsider = user_client(app, setting["organiser_b"])
    before, audits = _snapshot(setting["group"].id), _audit_count()
    for method, url, data in _requests(
        setting["group"].slug, setting["secret"].id, "twin-a@example.org"
    ):
        response = _send(outsider, method, url, data)
        assert response.status_code == 404, (method, url, response.status_code)
        body = text(response)
        assert SECRET not in body and "Hidden" not in body and "secret tag" not in body
    assert _snapshot(setting["group"].id) == before
    assert _audit_count() == audits  # no export or erasure was even recorded


def test_group_a_ids_are_not_found_through_group_b(app, setting):
    """Group B's organiser, on group B's own pages, cannot reach group A's rows by id."""
    outsider = user_client(app, setting["organiser_b"])
    before = _snapshot(setting["group"].id)
    for method, url, data in _requests(
        setting["group_b"].slug, setting["secret"].id, "twin-a@example.org"
    ):
        if f"/{setting['secret'].id}" not in url and "/merge" not in url:
            continue  # the group-wide pages are group B's own, and allowed
        response = _send(outsider, method, url, data)
        assert response.status_code == 404, (method, url, response.status_code)
        assert SECRET not in text(response)
    # Merging group A's supporter into one of group B's (by address) finds nobody either.
    response = _send(
        outsider,
        "POST",
        f"/g/{setting['group_b'].slug}/people/merge",
        {"target_id": str(setting["b_supporter"].id), "other_email": SECRET},
    )
    assert response.status_code == 422
    assert "No supporter of this group has that address" in text(response)
    assert _snapshot(setting["group"].id) == before
    # Nor do group A's supporters or tags turn up in group B's list or CSV.
    body = text(outsider.get(f"/g/{setting['group_b'].slug}/people"))
    assert SECRET not in body and "secret tag" not in body
    body = text(outsider.get(f"/g/{setting['group_b'].slug}/people.csv"))
    assert SECRET not in body and "b-supporter@example.org" in body


@pytest.mark.parametrize("role", [Role.MEMBER, Role.VOLUNTEER, Role.CASEWORKER])
def test_members_without_the_organiser_role_get_403(app, make, setting, role):
    user = make.user()
    make.member(setting["group"], user, role)
    client = user_client(app, user)
    before, audits = _snapshot(setting["group"].id), _audit_count()
    for method, url, data in _requests(
        setting["group"].slug, setting["secret"].id, "twin-a@example.org"
    ):
        response = _send(client, method, url, data)
        assert response.status_code == 403, (role, method, url, response.status_code)
        assert SECRET not in text(response)
    assert _snapshot(setting["group"].id) == before
    assert _audit_count() == audits


def test_anonymous_visitors_are_sent_to_log_in(client, setting):
    token = csrf_token(client)
    for method, url, data in _requests(
        setting["group"].slug, setting["secret"].id, "twin-a@example.org"
    ):
        if method == "GET":
            response = client.get(url)
            assert response.status_code == 302 and "/login" in response.headers["Location"]
        else:
            response = client.post(url, data=data | {"csrf_token": token})
            assert response.status_code == 401
        assert SECRET not in text(response)


def test_the_organiser_reaches_every_page(setting):
    client = setting["client"]
    for method, url, _data in _requests(
        setting["group"].slug, setting["secret"].id, "twin-a@example.org"
    ):
        if method == "GET":
            assert client.get(url).status_code == 200, url
