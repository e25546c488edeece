"""Deny by default, proven by walking the URL map.

Every route is either on the explicit public list below or refuses anonymous
visitors; every group-scoped route refuses members of other groups and anonymous
visitors, never showing a byte of the group's people and never changing anything.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select

from campaign.actions.models import Action, ActionSignup, ActionStatus, SignupStatus
from campaign.core.jobs import BackgroundJob, JobStatus
from campaign.core.permissions import is_public_endpoint
from campaign.extensions import db
from campaign.groups.models import Invitation, Membership, Role
from campaign.groups.services import invite
from campaign.mailing.models import Mailing
from campaign.people.models import Supporter
from campaign.people.services import upsert_supporter
from tests.conftest import csrf_token, login

# Adding a public route means adding it here, on purpose.
PUBLIC_ENDPOINTS = {
    "static",
    "ops.healthz",
    "accounts.register",
    "accounts.check_email",
    "accounts.confirm_email",
    "accounts.login",
    "accounts.two_factor",
    "accounts.logout",
    "accounts.forgot_password",
    "accounts.reset_password",
    "accounts.confirm_email_change",
    "groups.home",
    "groups.directory",
    "groups.public_page",
    "groups.invitation",
    "people.subscribe",
    "people.subscribe_sent",
    "people.confirm_subscription",
    "mailing.unsubscribe",
    "mailing.preferences",
    "mailing.my_data_link",
    "mailing.my_data",
    "mailing.download_my_data",
    "mailing.erase_me",
    "actions.public_list_all",
    "actions.public_list",
    "actions.public_action",
    "actions.signed_up",
    "actions.manage_signup",
    "actions.action_ics",
    "actions.group_feed",
}

# Public pages of a group: shown to anyone for an approved group, and checked below to
# carry nothing about its people.
PUBLIC_GROUP_ENDPOINTS = {"groups.public_page", "people.subscribe", "people.subscribe_sent",
                          "actions.public_list", "actions.public_action", "actions.signed_up",
                          "actions.action_ics", "actions.group_feed"}  # fmt: skip


def _rules(app: Flask):
    return [rule for rule in app.url_map.iter_rules() if rule.endpoint != "static"]


def test_public_endpoints_are_exactly_the_declared_ones(app):
    with app.test_request_context():
        public = {
            rule.endpoint for rule in app.url_map.iter_rules() if is_public_endpoint(rule.endpoint)
        }
    assert public == PUBLIC_ENDPOINTS


@pytest.fixture
def two_groups(make, app):
    """Group A with an organiser, a member and an open invitation; group B's organiser."""
    organiser_a = make.user("organiser-a@example.org")
    member_a = make.user("secret-member-a@example.org", name="Hidden Name")
    group_a = make.group("Group A", organiser=organiser_a)
    make.member(group_a, member_a, Role.CASEWORKER)
    organiser_b = make.user("organiser-b@example.org")
    group_b = make.group("Group B", organiser=organiser_b)
    with app.test_request_context():
        invitation = invite(organiser_a, group_a, "invitee-a@example.org", Role.MEMBER)
    supporter_a, _ = upsert_supporter(
        group_a, "secret-supporter-a@example.org", first_name="Hidden", last_name="Supporter"
    )
    mailing_a = Mailing(group_id=group_a.id, subject="Draft A", body_markdown="Secret draft A",
                        segment={"kind": "subscribers"})  # fmt: skip
    db.session.add(mailing_a)
    # A published action of group A with a sign-up whose address must never show.
    action_a = Action(group_id=group_a.id, title="Action A", status=ActionStatus.PUBLISHED,
                      starts_at=datetime.now(UTC) + timedelta(days=30),
                      ends_at=datetime.now(UTC) + timedelta(days=30, hours=2),
                      place_name="Hall A", capacity=10)  # fmt: skip
    db.session.add(action_a)
    db.session.flush()
    signup_a = ActionSignup(action_id=action_a.id, group_id=group_a.id, name="Hidden Name",
                            email="secret-signup-a@example.org",
                            status=SignupStatus.CONFIRMED)  # fmt: skip
    db.session.add(signup_a)
    # A finished import of group A's, whose report names one of its supporters.
    job_a = BackgroundJob(group_id=group_a.id, kind="people.import", status=JobStatus.DONE,
                          total=1, done=1, params={}, created_by_id=organiser_a.id,
                          result={"created": 1, "updated": 0, "subscribed": 0,
                                  "rejected_total": 1, "duplicates_total": 0, "name": "a.csv",
                                  "rejected": [[2, "secret-supporter-a@example.org"]],
                                  "duplicates": [], "notes": None})  # fmt: skip
    db.session.add(job_a)
    db.session.commit()
    # A pending CSV import of group A's, waiting for its column mapping.
    uploads = Path(app.instance_path) / "uploads"
    uploads.mkdir(parents=True, exist_ok=True)
    upload = uploads / f"import-{group_a.id}-walktoken.csv"
    upload.write_text("Email\nsecret-member-a@example.org\n")
    yield {
        "group_a": group_a,
        "group_b": group_b,
        "organiser_b": organiser_b,
        "membership_a": db.session.scalar(
            select(Membership).where(Membership.user_id == member_a.id)
        ),
        "invitation_a": invitation,
        "mailing_a": mailing_a,
        "supporter_a": supporter_a,
        "import_token": "walktoken",
        "action_a": action_a,
        "signup_a": signup_a,
        "job_a": job_a,
    }
    upload.unlink(missing_ok=True)


def _url_for_group_a(rule, data) -> str:
    values = {}
    for argument in rule.arguments:
        if argument == "slug":
            values["slug"] = data["group_a"].slug
        elif argument == "membership_id":
            values["membership_id"] = data["membership_a"].id
        elif argument == "invitation_id":
            values["invitation_id"] = data["invitation_a"].id
        elif argument == "supporter_id":
            values["supporter_id"] = data["supporter_a"].id
        elif argument == "mailing_id":
            values["mailing_id"] = data["mailing_a"].id
        elif argument == "token":
            values["token"] = data["import_token"]
        elif argument == "action_id":
            values["action_id"] = data["action_a"].id
        elif argument == "signup_id":
            values["signup_id"] = data["signup_a"].id
        elif argument == "job_id":
            values["job_id"] = data["job_a"].id
        else:
            pytest.fail(f"{rule.endpoint}: the walk does not know how to fill <{argument}>")
    return rule.build(values, append_unknown=False)[1]


def _group_rules(app):
    return [rule for rule in _rules(app) if "slug" in rule.arguments]


def _state(data) -> tuple:
    membership = db.session.get(Membership, data["membership_a"].id)
    invitation = db.session.get(Invitation, data["invitation_a"].id)
    db.session.refresh(data["group_a"])
    mailing = db.session.get(Mailing, data["mailing_a"].id)
    if mailing is not None:
        db.session.refresh(mailing)
    supporter = db.session.get(Supporter, data["supporter_a"].id)
    if supporter is not None:
        db.session.refresh(supporter)
    action = db.session.get(Action, data["action_a"].id)
    db.session.refresh(action)
    signups = db.session.execute(
        select(ActionSignup.email, ActionSignup.status, ActionSignup.checked_in_at)
        .where(ActionSignup.action_id == action.id)
        .order_by(ActionSignup.id)
    ).all()
    return (
        (action.title, action.status, action.capacity, action.starts_at),
        signups,
        (supporter.email, supporter.first_name, supporter.updates_status, supporter.erased_at)
        if supporter
        else None,
        membership.role if membership else None,
        invitation.revoked_at,
        data["group_a"].name,
        data["group_a"].require_caseworker_2fa,
        (mailing.status, mailing.subject, mailing.body_markdown) if mailing else None,
        len(
            db.session.scalars(
                select(Membership).where(Membership.group_id == data["group_a"].id)
            ).all()
        ),
    )


def _forbidden_form(rule) -> dict:
    """Plausible form data, so that a missing check would really act."""
    return {
        "role": str(Role.ORGANISER.value),
        "email": "intruder@example.org",
        "name": "Taken over",
        "area": "Elsewhere",
        "description": "Changed by someone else",
        "contact_email": "intruder@example.org",
        "subject": "Taken over",
        "body": "Changed by someone else",
        "segment": "subscribers",
        "when": "now",
    }


def test_the_walk_covers_every_group_scoped_route(app):
    endpoints = {rule.endpoint for rule in _group_rules(app)}
    # A sanity floor: if routes stop being found, the walk would prove nothing.
    assert {"groups.dashboard", "groups.members", "groups.members_csv", "groups.invite",
            "groups.change_role", "groups.remove_member", "groups.revoke_invitation",
            "groups.leave", "groups.settings", "groups.public_page"} <= endpoints  # fmt: skip


def test_other_groups_members_are_refused_everywhere(app, client, two_groups):
    data = two_groups
    login(client, data["organiser_b"])
    before = _state(data)
    checked = 0
    for rule in _group_rules(app):
        if rule.endpoint in PUBLIC_GROUP_ENDPOINTS:
            continue
        url = _url_for_group_a(rule, data)
        for method in sorted(rule.methods & {"GET", "POST"}):
            if method == "GET":
                response = client.get(url)
            else:
                form = _forbidden_form(rule) | {"csrf_token": csrf_token(client)}
                response = client.post(url, data=form)
            body = response.get_data(as_text=True)
            assert response.status_code in (403, 404), (rule.endpoint, method, response.status_code)
            assert "secret-member-a@example.org" not in body, rule.endpoint
            assert "Hidden Name" not in body, rule.endpoint
            assert "secret-supporter-a@example.org" not in body, rule.endpoint
            assert "secret-signup-a@example.org" not in body, rule.endpoint
            checked += 1
    assert checked >= 10
    assert _state(data) == before


def test_anonymous_visitors_are_refused_everywhere(app, client, two_groups):
    data = two_groups
    before = _state(data)
    token = csrf_token(client)
    for rule in _group_rules(app):
        if rule.endpoint in PUBLIC_GROUP_ENDPOINTS:
            continue
        url = _url_for_group_a(rule, data)
        for method in sorted(rule.methods & {"GET", "POST"}):
            if method == "GET":
                response = client.get(url)
                assert response.status_code == 302, (rule.endpoint, response.status_code)
                assert response.headers["Location"].startswith("/login?next="), rule.endpoint
            else:
                response = client.post(url, data=_forbidden_form(rule) | {"csrf_token": token})
                assert response.status_code in (401, 403, 404), (
                    rule.endpoint,
                    response.status_code,
                )
            body = response.get_data(as_text=True)
            assert "secret-member-a@example.org" not in body
            assert "Hidden Name" not in body
            assert "secret-supporter-a@example.org" not in body
            assert "secret-signup-a@example.org" not in body
    assert _state(data) == before


def test_public_group_page_shows_no_people(client, two_groups):
    response = client.get(f"/g/{two_groups['group_a'].slug}")
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    assert "secret-member-a@example.org" not in body
    assert "organiser-a@example.org" not in body
    assert "Hidden Name" not in body
    assert "secret-supporter-a@example.org" not in body


def test_every_private_route_sends_anonymous_visitors_to_login(app, client, two_groups):
    token = csrf_token(client)
    for rule in _rules(app):
        if rule.endpoint in PUBLIC_ENDPOINTS:
            continue
        values = {}
        for argument in rule.arguments:
            values[argument] = {
                "slug": two_groups["group_a"].slug,
                "membership_id": two_groups["membership_a"].id,
                "invitation_id": two_groups["invitation_a"].id,
                "mailing_id": two_groups["mailing_a"].id,
                "supporter_id": two_groups["supporter_a"].id,
                "group_id": two_groups["group_a"].id,
                "user_id": two_groups["organiser_b"].id,
                "token": "x",
                "action_id": two_groups["action_a"].id,
                "signup_id": two_groups["signup_a"].id,
                "job_id": two_groups["job_a"].id,
            }.get(argument) or pytest.fail(f"unknown argument {argument} in {rule.rule}")
        url = rule.build(values, append_unknown=False)[1]
        if "GET" in rule.methods:
            response = client.get(url)
            assert response.status_code == 302, (rule.endpoint, response.status_code)
            assert response.headers["Location"].startswith("/login"), rule.endpoint
        if "POST" in rule.methods:
            response = client.post(url, data={"csrf_token": token})
            assert response.status_code == 401, (rule.endpoint, response.status_code)


def test_admin_pages_are_hidden_from_organisers(client, make, two_groups):
    login(client, make.user())
    for url in ("/admin/groups", "/admin/audit", "/admin/outbox", "/admin/users",
                f"/admin/users/{two_groups['organiser_b'].id}/two-factor-reset"):  # fmt: skip
        assert client.get(url).status_code == 404
    response = client.post(
        f"/admin/groups/{two_groups['group_b'].id}/decide",
        data={"decision": "approve", "csrf_token": csrf_token(client)},
    )
    assert response.status_code == 404


# --- same group, lower roles --------------------------------------------------------------------
#
# What a member and a volunteer of group A may open, on purpose. Everything else of the
# group's must be a 403 or a 404 for them and change nothing. Volunteers run door
# check-in only for an action whose organiser chose "volunteers can run door check-in"
# (on for Action A here; tests/actions/test_door_volunteers.py covers it off).
MEMBER_MAY_OPEN = {("groups.dashboard", "GET"), ("groups.leave", "POST")}
VOLUNTEER_MAY_OPEN = MEMBER_MAY_OPEN | {
    ("actions.door_list", "GET"),
    ("actions.check_in", "GET"),
    ("actions.mark_attended", "POST"),
    ("actions.add_walk_in", "POST"),
}


@pytest.fixture
def lower_roles(make, two_groups):
    data = two_groups
    member = make.user("plain-member-a@example.org")
    volunteer = make.user("volunteer-a@example.org")
    make.member(data["group_a"], member, Role.MEMBER)
    make.member(data["group_a"], volunteer, Role.VOLUNTEER)
    action = db.session.get(Action, data["action_a"].id)
    action.volunteers_check_in = True
    db.session.commit()
    return data | {"member": member, "volunteer": volunteer}


def test_the_allow_lists_name_real_routes(app):
    routes = {(rule.endpoint, m) for rule in _group_rules(app) for m in rule.methods}
    assert routes >= VOLUNTEER_MAY_OPEN


@pytest.mark.parametrize(
    ("who", "allowed"), [("member", MEMBER_MAY_OPEN), ("volunteer", VOLUNTEER_MAY_OPEN)]
)
def test_lower_roles_open_only_their_allow_list(app, lower_roles, who, allowed):
    data = lower_roles
    client = app.test_client()
    login(client, data[who])
    before = _state(data)
    refused = 0
    for rule in _group_rules(app):
        if rule.endpoint in PUBLIC_GROUP_ENDPOINTS:
            continue
        url = _url_for_group_a(rule, data)
        for method in sorted(rule.methods & {"GET", "POST"}):
            if (rule.endpoint, method) in allowed:
                continue
            if method == "GET":
                response = client.get(url)
            else:
                form = _forbidden_form(rule) | {"csrf_token": csrf_token(client)}
                response = client.post(url, data=form)
            assert response.status_code in (403, 404), (who, rule.endpoint, method,
                                                        response.status_code)  # fmt: skip
            body = response.get_data(as_text=True)
            for secret in ("secret-member-a@example.org", "secret-supporter-a@example.org",
                           "secret-signup-a@example.org", "Hidden Name"):  # fmt: skip
                assert secret not in body, (who, rule.endpoint)
            refused += 1
    assert refused >= 40
    assert _state(data) == before

    # What the role may open answers, and never shows an address of the group's people.
    rules = {rule.endpoint: rule for rule in _group_rules(app)}
    for endpoint, method in sorted(allowed - {("groups.leave", "POST")}):
        url = _url_for_group_a(rules[endpoint], data)
        if method == "GET":
            response = client.get(url)
            assert response.status_code == 200, (who, endpoint)
        else:
            form = _forbidden_form(rules[endpoint]) | {"csrf_token": csrf_token(client)}
            response = client.post(url, data=form)
            assert response.status_code == 302, (who, endpoint, response.status_code)
        body = response.get_data(as_text=True)
        assert "secret-signup-a@example.org" not in body and "secret-member-a" not in body
    left = client.post(f"/g/{data['group_a'].slug}/leave", data={"csrf_token": csrf_token(client)})
    assert left.status_code == 302
    assert client.get(f"/g/{data['group_a'].slug}/dashboard").status_code == 404
