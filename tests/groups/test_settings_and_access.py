"""Group settings, the two-factor policy, and load_group's checks."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from flask import g
from flask_login import login_user
from werkzeug.exceptions import Forbidden, NotFound

from campaign.extensions import db
from campaign.groups.access import load_group
from campaign.groups.models import GroupStatus, Role
from tests.conftest import post
from tests.groups.helpers import audit_rows, client_for, text

DETAILS = {
    "name": "Riverside Health Justice Renamed",
    "area": "Greater Riverside",
    "description": "Now with *more* campaigning.",
    "contact_email": "Hello@Riverside.example.org",
}


@pytest.fixture
def organised(app, make):
    organiser = make.user()
    group = make.group("Riverside Health Justice", organiser=organiser)
    assert group.require_caseworker_2fa is True
    return group, organiser, client_for(app, organiser)


def test_settings_page_shows_the_current_details(organised):
    group, _organiser, client = organised
    response = client.get(f"/g/{group.slug}/settings")
    assert response.status_code == 200
    body = text(response)
    assert 'value="Riverside Health Justice"' in body
    assert f'value="{group.contact_email}"' in body
    assert 'name="require_caseworker_2fa"' in body
    assert "checked" in body


def test_organiser_edits_the_details(organised):
    group, _organiser, client = organised

    response = post(client, f"/g/{group.slug}/settings", {**DETAILS, "require_caseworker_2fa": "y"})

    assert response.status_code == 302
    assert response.location.endswith(f"/g/{group.slug}/settings")
    db.session.refresh(group)
    assert group.name == "Riverside Health Justice Renamed"
    assert group.area == "Greater Riverside"
    assert group.description == "Now with *more* campaigning."
    assert group.contact_email == "hello@riverside.example.org"
    assert group.require_caseworker_2fa is True
    assert audit_rows("group.2fa_policy_changed", group.id) == []
    assert "Group details saved." in text(client.get(f"/g/{group.slug}/settings"))

    public = text(client.get(f"/g/{group.slug}"))
    assert "Riverside Health Justice Renamed" in public
    assert "<em>more</em>" in public


def test_turning_off_the_2fa_policy_is_audited(organised):
    group, organiser, client = organised

    response = post(client, f"/g/{group.slug}/settings", DETAILS)  # checkbox left unticked

    assert response.status_code == 302
    db.session.refresh(group)
    assert group.require_caseworker_2fa is False
    [event] = audit_rows("group.2fa_policy_changed", group.id)
    assert event.actor_id == organiser.id
    assert event.details == {"required": False}


def test_turning_the_2fa_policy_back_on_is_audited(organised):
    group, _organiser, client = organised
    group.require_caseworker_2fa = False
    db.session.commit()

    post(client, f"/g/{group.slug}/settings", {**DETAILS, "require_caseworker_2fa": "y"})

    db.session.refresh(group)
    assert group.require_caseworker_2fa is True
    [event] = audit_rows("group.2fa_policy_changed", group.id)
    assert event.details == {"required": True}


def test_invalid_settings_are_422_and_change_nothing(organised):
    group, _organiser, client = organised
    response = post(
        client,
        f"/g/{group.slug}/settings",
        {**DETAILS, "name": "", "contact_email": "nope", "require_caseworker_2fa": ""},
    )
    assert response.status_code == 422
    assert "Enter the group" in text(response)
    assert "Enter an email address like name@example.org." in text(response)
    db.session.refresh(group)
    assert group.name == "Riverside Health Justice"
    assert group.require_caseworker_2fa is True
    assert audit_rows("group.2fa_policy_changed", group.id) == []


# --- load_group ----------------------------------------------------------------------------


@contextmanager
def as_user(app, user) -> Iterator[None]:
    """A request context with ``user`` logged in, for calling load_group directly."""
    with app.test_request_context():
        login_user(user)
        try:
            yield
        finally:
            g.pop("_login_user", None)


@pytest.fixture
def casework_group(make):
    group = make.group(organiser=make.user())
    assert group.require_caseworker_2fa is True
    return group


def test_caseworker_without_2fa_is_refused_casework(app, make, casework_group):
    caseworker = make.user()
    make.member(casework_group, caseworker, Role.CASEWORKER)
    with as_user(app, caseworker), pytest.raises(Forbidden) as info:
        load_group(casework_group.slug, role=Role.CASEWORKER)
    assert info.value.description == "two-factor-required"


def test_caseworker_with_2fa_gets_casework(app, make, casework_group):
    caseworker = make.user()
    make.member(casework_group, caseworker, Role.CASEWORKER)
    caseworker.totp_enabled = True
    with as_user(app, caseworker):
        access = load_group(casework_group.slug, role=Role.CASEWORKER)
    assert access.group.id == casework_group.id
    assert access.membership.user_id == caseworker.id
    assert access.role == Role.CASEWORKER
    assert not access.is_organiser


def test_organiser_without_2fa_is_refused_casework_too(app, casework_group):
    organiser = casework_group.memberships[0].user
    with as_user(app, organiser), pytest.raises(Forbidden):
        load_group(casework_group.slug, role=Role.CASEWORKER)
    with as_user(app, organiser):
        assert load_group(casework_group.slug, role=Role.ORGANISER).is_organiser


def test_caseworker_without_2fa_passes_when_the_group_does_not_require_it(
    app, make, casework_group
):
    casework_group.require_caseworker_2fa = False
    caseworker = make.user()
    make.member(casework_group, caseworker, Role.CASEWORKER)
    with as_user(app, caseworker):
        assert load_group(casework_group.slug, role=Role.CASEWORKER).role == Role.CASEWORKER


def test_a_lower_role_is_refused_even_with_2fa(app, make, casework_group):
    volunteer = make.user()
    make.member(casework_group, volunteer, Role.VOLUNTEER)
    volunteer.totp_enabled = True
    with as_user(app, volunteer), pytest.raises(Forbidden) as info:
        load_group(casework_group.slug, role=Role.CASEWORKER)
    assert info.value.description != "two-factor-required"
    with as_user(app, volunteer):
        assert load_group(casework_group.slug).role == Role.VOLUNTEER


def test_non_members_and_unknown_groups_are_404(app, make, casework_group):
    stranger = make.user(admin=True)  # platform admins get no special access
    stranger.totp_enabled = True
    with as_user(app, stranger), pytest.raises(NotFound):
        load_group(casework_group.slug)
    with as_user(app, stranger), pytest.raises(NotFound):
        load_group("no-such-group")


def test_a_rejected_group_is_404_even_for_its_organiser(app, make):
    organiser = make.user()
    group = make.group(organiser=organiser, status=GroupStatus.REJECTED)
    with as_user(app, organiser), pytest.raises(NotFound):
        load_group(group.slug, role=Role.ORGANISER)


def test_the_2fa_message_is_shown_on_the_error_page(app, make):
    """The error handler turns the 403 into a page that says what to do."""
    caseworker = make.user()
    group = make.group(organiser=make.user())
    make.member(group, caseworker, Role.CASEWORKER)

    with as_user(app, caseworker):
        with pytest.raises(Forbidden) as info:
            load_group(group.slug, role=Role.CASEWORKER)
        response = app.handle_http_exception(info.value)
    body, status = response
    assert status == 403
    assert "requires two-factor authentication for casework" in body
