"""Public forms never change existing people (DESIGN rule 18).

Anyone can type anyone's address into a public form, so from the sign-up form and the
'get updates' form a known person's details are only filled where they were empty.
The person changes them through the link emailed to their address.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from campaign.actions.models import Action, ActionSignup
from campaign.core.models import utcnow
from campaign.extensions import db
from campaign.mailing import services as mailing_services
from campaign.people.models import Supporter, UpdatesStatus
from tests import factories
from tests.conftest import links_in, mail_to, path_of, post
from tests.mailing.helpers import add_draft

ADDRESS = "ana@example.org"


@pytest.fixture
def group(make):
    return make.group("Riverside Health Justice")


@pytest.fixture
def action(group) -> Action:
    return factories.published_action(group)


def _sign(client, action, **data):
    return post(client, f"/g/{action.group.slug}/actions/{action.id}", {"email": ADDRESS} | data)


def _signup(action) -> ActionSignup:
    return db.session.scalars(select(ActionSignup).where(ActionSignup.action_id == action.id)).one()


def _supporter(group) -> Supporter:
    return db.session.scalars(
        select(Supporter).where(Supporter.group_id == group.id, Supporter.email == ADDRESS)
    ).one()


def _manage_link() -> str:
    message = mail_to(ADDRESS)[-1]
    return path_of(next(url for url in links_in(message) if "/signup/" in url))


def _greeting(client, group, make) -> str:
    """What the group's next campaign email would call the person ({{first_name}})."""
    mailing = add_draft(group, body="Hello {{first_name}}!")
    mailing_services.send_now(make.user(), group, mailing)
    return mail_to(ADDRESS)[-1].text_body


def test_a_stranger_signing_up_with_a_known_address_changes_nothing(client, action):
    ana = {"name": "Ana Silva", "phone": "0770 900 123", "access_needs": "Step-free access"}
    assert _sign(client, action, **ana).status_code == 302
    first_link = _manage_link()

    stranger = {"name": "Mallory Stranger", "phone": "0999 999", "access_needs": "none at all"}
    response = _sign(client, action, **stranger)
    assert response.status_code == 302  # the same neutral page: it reveals nothing
    signup = _signup(action)
    assert (signup.name, signup.phone, signup.access_needs) == (
        "Ana Silva",
        "0770 900 123",
        "Step-free access",
    )
    assert _supporter(action.group).first_name == "Ana"
    # Nothing changed, so the link already in Ana's inbox keeps working.
    assert client.get(first_link).status_code == 200


def test_a_public_sign_up_fills_only_what_was_empty(client, action):
    _sign(client, action, name="Ana Silva")
    _sign(client, action, name="Somebody Else", phone="0770 111", access_needs="BSL")
    signup = _signup(action)
    assert (signup.name, signup.phone, signup.access_needs) == ("Ana Silva", "0770 111", "BSL")


def test_a_cancelled_sign_up_taken_up_again_keeps_the_details(client, action):
    _sign(client, action, name="Ana Silva", phone="0770 900 123", access_needs="Step-free")
    post(client, _manage_link(), {"cancel": "1"})
    assert _signup(action).status == "cancelled"
    _sign(client, action, name="Mallory", phone="0999", access_needs="none")
    signup = _signup(action)
    assert signup.status == "confirmed"
    assert (signup.name, signup.phone, signup.access_needs) == (
        "Ana Silva",
        "0770 900 123",
        "Step-free",
    )


def test_subscribing_with_a_known_address_keeps_the_name_used_in_merges(client, group, make):
    post(client, f"/g/{group.slug}/subscribe", {"first_name": "Ana", "email": ADDRESS,
                                                "consent": "y"})  # fmt: skip
    supporter = _supporter(group)
    supporter.updates_status = UpdatesStatus.SUBSCRIBED
    supporter.updates_confirmed_at = utcnow()
    db.session.commit()

    response = post(client, f"/g/{group.slug}/subscribe",
                    {"first_name": "Mallory", "email": ADDRESS, "consent": "y"})  # fmt: skip
    assert response.status_code == 302
    assert _supporter(group).first_name == "Ana"
    assert "Hello Ana!" in _greeting(client, group, make)


def test_a_sign_up_does_not_rename_a_supporter_the_group_knows(client, group, action, make):
    make_supporter = Supporter(group_id=group.id, email=ADDRESS, first_name="Ana",
                               updates_status=UpdatesStatus.SUBSCRIBED,
                               updates_confirmed_at=utcnow())  # fmt: skip
    db.session.add(make_supporter)
    db.session.commit()
    _sign(client, action, name="Mallory Stranger")
    assert _supporter(group).first_name == "Ana"
    assert "Hello Ana!" in _greeting(client, group, make)


def test_the_emailed_link_still_changes_the_details_and_the_greeting(client, group, action, make):
    _sign(client, action, name="Ana Silva", phone="0770 900 123", access_needs="Step-free")
    supporter = _supporter(group)
    supporter.updates_status = UpdatesStatus.SUBSCRIBED
    supporter.updates_confirmed_at = utcnow()
    db.session.commit()

    change = {"name": "Anabela Silva", "phone": "0771 000 000", "access_needs": ""}
    response = post(client, _manage_link(), change)
    assert response.status_code == 302
    signup = _signup(action)
    assert (signup.name, signup.phone, signup.access_needs) == (
        "Anabela Silva",
        "0771 000 000",
        "",
    )
    assert _supporter(group).first_name == "Anabela"
    assert "Hello Anabela!" in _greeting(client, group, make)
