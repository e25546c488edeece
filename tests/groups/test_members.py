"""Organisers manage members; a group always keeps at least one organiser."""

from __future__ import annotations

import csv
import io

import pytest

from campaign.extensions import db
from campaign.groups.models import Role
from tests.conftest import post
from tests.groups.helpers import audit_rows, client_for, membership, text

LAST_ORGANISER = "A group needs at least one organiser."


@pytest.fixture
def team(app, make):
    """An approved group with an organiser, a volunteer and a member, and the organiser's client."""
    organiser = make.user(name="Olive Organiser")
    group = make.group("Riverside Health Justice", organiser=organiser)
    volunteer = make.user(name="Vic Volunteer")
    member = make.user(name="Mo Member")
    make.member(group, volunteer, Role.VOLUNTEER)
    make.member(group, member, Role.MEMBER)
    return {
        "group": group,
        "organiser": organiser,
        "volunteer": volunteer,
        "member": member,
        "client": client_for(app, organiser),
    }


def role_of(group, user) -> int | None:
    row = membership(group, user)
    if row is None:
        return None
    db.session.refresh(row)
    return row.role


# --- the member list -----------------------------------------------------------------------


def test_organiser_sees_the_member_list(team):
    response = team["client"].get(f"/g/{team['group'].slug}/members")
    assert response.status_code == 200
    body = text(response)
    for key in ("organiser", "volunteer", "member"):
        assert team[key].email in body
        assert team[key].display_name in body
    assert "3 members" in body


def test_member_list_shows_no_one_from_another_group(team, make):
    outsider = make.user()
    make.group(organiser=outsider)
    body = text(team["client"].get(f"/g/{team['group'].slug}/members"))
    assert outsider.email not in body


def test_csv_export(team, make):
    group = team["group"]
    sneaky = make.user(name='=HYPERLINK("http://evil.example")')
    make.member(group, sneaky, Role.MEMBER)

    response = team["client"].get(f"/g/{group.slug}/members.csv")

    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    disposition = response.headers["Content-Disposition"]
    assert disposition.startswith("attachment")
    assert f"{group.slug}-members.csv" in disposition

    rows = list(csv.reader(io.StringIO(text(response))))
    assert rows[0] == ["name", "email", "role", "joined"]
    body_rows = rows[1:]
    assert len(body_rows) == 4
    by_email = {row[1]: row for row in body_rows}
    assert set(by_email) == {
        team["organiser"].email,
        team["volunteer"].email,
        team["member"].email,
        sneaky.email,
    }
    assert by_email[team["organiser"].email][0] == "Olive Organiser"
    assert by_email[team["organiser"].email][2] == "Organiser"
    assert by_email[team["volunteer"].email][2] == "Volunteer"
    assert by_email[sneaky.email][0] == '\'=HYPERLINK("http://evil.example")'


@pytest.mark.parametrize("name", ["+SUM(A1)", "-2+3", "@cmd"])
def test_csv_export_neutralises_other_formula_prefixes(team, make, name):
    make.member(team["group"], make.user(name=name), Role.MEMBER)
    response = team["client"].get(f"/g/{team['group'].slug}/members.csv")
    names = [row[0] for row in csv.reader(io.StringIO(text(response)))]
    assert "'" + name in names
    assert name not in names


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "members"),
        ("get", "members.csv"),
        ("get", "settings"),
        ("post", "settings"),
        ("post", "members/invite"),
    ],
)
@pytest.mark.parametrize("who", ["member", "volunteer"])
def test_non_organisers_get_403(app, team, method, path, who):
    client = client_for(app, team[who])
    url = f"/g/{team['group'].slug}/{path}"
    if method == "get":
        response = client.get(url)
    else:
        response = post(
            client,
            url,
            {
                "email": "someone@example.org",
                "role": str(Role.ORGANISER.value),
                "name": "Taken Over",
                "area": "Elsewhere",
                "description": "Hijacked",
                "contact_email": "evil@example.org",
            },
        )
    assert response.status_code == 403
    assert team["member"].email not in text(response)
    db.session.refresh(team["group"])
    assert team["group"].name == "Riverside Health Justice"
    assert audit_rows("invitation.sent", team["group"].id) == []


def test_non_organisers_cannot_change_roles_or_remove(app, team):
    client = client_for(app, team["member"])
    group = team["group"]
    own = membership(group, team["member"])
    boss = membership(group, team["organiser"])

    response = post(
        client, f"/g/{group.slug}/members/{own.id}/role", {"role": str(Role.ORGANISER.value)}
    )
    assert response.status_code == 403
    response = post(client, f"/g/{group.slug}/members/{boss.id}/remove")
    assert response.status_code == 403

    assert role_of(group, team["member"]) == Role.MEMBER
    assert role_of(group, team["organiser"]) == Role.ORGANISER


@pytest.mark.parametrize("path", ["members", "members.csv", "settings", "dashboard"])
def test_non_members_get_404(app, team, make, path):
    stranger = client_for(app, make.user())
    assert stranger.get(f"/g/{team['group'].slug}/{path}").status_code == 404


@pytest.mark.parametrize("path", ["members", "members.csv", "settings"])
def test_anonymous_visitors_are_sent_to_login(client, team, path):
    response = client.get(f"/g/{team['group'].slug}/{path}")
    assert response.status_code == 302
    assert "/login" in response.location


# --- roles ---------------------------------------------------------------------------------


def test_organiser_changes_a_role(team):
    group = team["group"]
    target = membership(group, team["member"])

    response = post(
        team["client"],
        f"/g/{group.slug}/members/{target.id}/role",
        {"role": str(Role.CASEWORKER.value)},
    )

    assert response.status_code == 302
    assert response.location.endswith(f"/g/{group.slug}/members")
    assert role_of(group, team["member"]) == Role.CASEWORKER
    [event] = audit_rows("membership.role_changed", group.id)
    assert event.actor_id == team["organiser"].id
    assert event.subject_user_id == team["member"].id
    assert event.details == {"old": "MEMBER", "new": "CASEWORKER"}


def test_an_unknown_role_is_refused(team):
    group = team["group"]
    target = membership(group, team["member"])
    response = post(team["client"], f"/g/{group.slug}/members/{target.id}/role", {"role": "99"})
    assert response.status_code == 422
    assert role_of(group, team["member"]) == Role.MEMBER
    assert audit_rows("membership.role_changed", group.id) == []


def test_the_last_organiser_cannot_be_demoted(team):
    group = team["group"]
    own = membership(group, team["organiser"])

    response = post(
        team["client"], f"/g/{group.slug}/members/{own.id}/role", {"role": str(Role.MEMBER.value)}
    )

    assert response.status_code == 409
    assert LAST_ORGANISER in text(response)
    assert role_of(group, team["organiser"]) == Role.ORGANISER
    assert audit_rows("membership.role_changed", group.id) == []


def test_with_two_organisers_one_can_be_demoted(team):
    group = team["group"]
    volunteer = membership(group, team["volunteer"])
    url = f"/g/{group.slug}/members/{volunteer.id}/role"
    assert post(team["client"], url, {"role": str(Role.ORGANISER.value)}).status_code == 302
    assert role_of(group, team["volunteer"]) == Role.ORGANISER

    own = membership(group, team["organiser"])
    response = post(
        team["client"], f"/g/{group.slug}/members/{own.id}/role", {"role": str(Role.MEMBER.value)}
    )

    assert response.status_code == 302
    assert role_of(group, team["organiser"]) == Role.MEMBER
    assert role_of(group, team["volunteer"]) == Role.ORGANISER
    # The demoted organiser has lost the members page.
    assert team["client"].get(f"/g/{group.slug}/members").status_code == 403


def test_the_last_organiser_cannot_be_removed(team):
    group = team["group"]
    own = membership(group, team["organiser"])

    response = post(team["client"], f"/g/{group.slug}/members/{own.id}/remove")

    assert response.status_code == 409
    assert LAST_ORGANISER in text(response)
    assert role_of(group, team["organiser"]) == Role.ORGANISER


def test_organiser_removes_a_member(team):
    group = team["group"]
    target = membership(group, team["member"])

    response = post(team["client"], f"/g/{group.slug}/members/{target.id}/remove")

    assert response.status_code == 302
    db.session.expire_all()
    assert membership(group, team["member"]) is None
    [event] = audit_rows("membership.removed", group.id)
    assert event.subject_user_id == team["member"].id
    assert team["member"].email not in text(team["client"].get(f"/g/{group.slug}/members"))


def test_a_removed_member_loses_access(app, team):
    group = team["group"]
    member_client = client_for(app, team["member"])
    assert member_client.get(f"/g/{group.slug}/dashboard").status_code == 200
    target = membership(group, team["member"])
    post(team["client"], f"/g/{group.slug}/members/{target.id}/remove")
    assert member_client.get(f"/g/{group.slug}/dashboard").status_code == 404


# --- leaving -------------------------------------------------------------------------------


def test_a_member_can_leave(app, team):
    group = team["group"]
    client = client_for(app, team["member"])

    response = post(client, f"/g/{group.slug}/leave")

    assert response.status_code == 302
    assert response.location.endswith("/")
    db.session.expire_all()
    assert membership(group, team["member"]) is None
    [event] = audit_rows("membership.left", group.id)
    assert event.actor_id == team["member"].id
    assert client.get(f"/g/{group.slug}/dashboard").status_code == 404


def test_the_last_organiser_cannot_leave(team):
    group = team["group"]
    response = post(team["client"], f"/g/{group.slug}/leave")
    assert response.status_code == 409
    assert LAST_ORGANISER in text(response)
    assert role_of(group, team["organiser"]) == Role.ORGANISER


def test_an_organiser_can_leave_when_another_remains(app, team, make):
    group = team["group"]
    second = make.user()
    make.member(group, second, Role.ORGANISER)
    response = post(team["client"], f"/g/{group.slug}/leave")
    assert response.status_code == 302
    db.session.expire_all()
    assert membership(group, team["organiser"]) is None
    assert role_of(group, second) == Role.ORGANISER


def test_a_non_member_cannot_leave(app, team, make):
    response = post(client_for(app, make.user()), f"/g/{team['group'].slug}/leave")
    assert response.status_code == 404


# --- ids from another group ----------------------------------------------------------------


def test_membership_ids_from_another_group_are_404(team, make):
    group = team["group"]
    other_organiser = make.user()
    other_group = make.group(organiser=other_organiser)
    victim = make.user()
    other_membership = make.member(other_group, victim, Role.MEMBER)
    other_organiser_membership = membership(other_group, other_organiser)

    role = post(
        team["client"],
        f"/g/{group.slug}/members/{other_membership.id}/role",
        {"role": str(Role.ORGANISER.value)},
    )
    assert role.status_code == 404
    assert role_of(other_group, victim) == Role.MEMBER

    remove = post(team["client"], f"/g/{group.slug}/members/{other_organiser_membership.id}/remove")
    assert remove.status_code == 404
    assert role_of(other_group, other_organiser) == Role.ORGANISER
    assert audit_rows("membership.role_changed") == []
    assert audit_rows("membership.removed") == []


def test_organiser_of_one_group_gets_404_on_another(team, make):
    other_group = make.group(organiser=make.user())
    for path in ("members", "members.csv", "settings"):
        assert team["client"].get(f"/g/{other_group.slug}/{path}").status_code == 404
