"""Organisers add supporters by hand (with or without in-person consent) and edit them."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from campaign.extensions import db
from campaign.people import services
from campaign.people.models import (
    ConsentAction,
    ConsentMethod,
    Supporter,
    Suppression,
    SuppressionReason,
    Tag,
    UpdatesStatus,
)
from tests.conftest import mail_to, post
from tests.people.organiser_helpers import (
    audit_rows,
    consents_of,
    make_team,
    reload,
    supporter,
    text,
)


@pytest.fixture
def team(app, make):
    return make_team(app)


def _add(team, **data):
    form = {"email": "ana@example.org"} | data
    return post(team["client"], f"{team['base']}/new", form)


def _rows(group, email: str) -> list[Supporter]:
    return list(
        db.session.scalars(
            select(Supporter).where(Supporter.group_id == group.id, Supporter.email == email)
        )
    )


def test_the_consent_box_is_unticked_and_shows_the_wording(team):
    body = text(team["client"].get(f"{team['base']}/new"))
    assert 'name="agreed_in_person"' in body
    assert "They agreed in person to get email updates" in body
    assert "checked" not in body
    assert services.updates_wording(team["group"]) in body


def test_adding_without_consent_records_none(team):
    response = _add(
        team,
        first_name="Ana",
        last_name="Silva",
        phone="07700 900123",
        postcode="e1 6an",
        tags="Nurses, stall volunteers, nurses",
    )

    [row] = _rows(team["group"], "ana@example.org")
    assert response.status_code == 302
    assert response.headers["Location"] == f"{team['base']}/{row.id}"
    assert (row.first_name, row.last_name, row.phone, row.postcode) == (
        "Ana",
        "Silva",
        "07700 900123",
        "E1 6AN",
    )
    assert row.source == "organiser"
    assert sorted(tag.name for tag in row.tags) == ["Nurses", "stall volunteers"]
    assert row.updates_status == UpdatesStatus.NONE
    assert consents_of(row.id) == []
    assert services.count_recipients(team["group"]) == 0
    page = text(team["client"].get(response.headers["Location"]))
    assert "Supporter added." in page
    assert "No consent recorded" in page
    assert [a.details["supporter"] for a in audit_rows("supporter.added", team["group"])] == [
        row.id
    ]


def test_adding_with_in_person_consent_records_it_as_confirmed(team):
    response = _add(team, first_name="Ana", agreed_in_person="y")

    assert response.status_code == 302
    [row] = _rows(team["group"], "ana@example.org")
    assert row.updates_status == UpdatesStatus.SUBSCRIBED
    assert row.updates_confirmed_at is not None
    [record] = consents_of(row.id)
    assert record.action == ConsentAction.GRANTED
    assert record.method == ConsentMethod.IN_PERSON
    assert record.wording == services.updates_wording(team["group"])
    assert record.recorded_by_id == team["organiser"].id
    # No confirmation email: the person said yes to an organiser, face to face.
    assert mail_to("ana@example.org") == []
    assert services.count_recipients(team["group"]) == 1

    page = text(team["client"].get(response.headers["Location"]))
    assert "In person" in page and "recorded by Olive Organiser" in page
    assert services.updates_wording(team["group"]) in page


def test_an_address_already_on_the_list_is_updated_not_duplicated(team):
    group = team["group"]
    existing = supporter(group, "ana@example.org", first_name="Ana", phone="0123", tags=["stall"])

    response = _add(team, email="ANA@Example.org", last_name="Silva", tags="nurses")

    assert response.status_code == 302
    assert response.headers["Location"] == f"{team['base']}/{existing.id}"
    [row] = _rows(group, "ana@example.org")
    assert row.id == existing.id
    assert (row.first_name, row.last_name, row.phone) == ("Ana", "Silva", "0123")
    assert sorted(tag.name for tag in row.tags) == ["nurses", "stall"]
    assert "updated the existing supporter" in text(team["client"].get(f"{team['base']}/{row.id}"))


def test_existing_tags_are_reused_whatever_their_case(team):
    group = team["group"]
    supporter(group, "bo@example.org", tags=["Nurses"])
    _add(team, tags="nurses, NURSES")
    count = db.session.scalar(select(func.count(Tag.id)).where(Tag.group_id == group.id))
    assert count == 1
    [row] = _rows(group, "ana@example.org")
    assert [tag.name for tag in row.tags] == ["Nurses"]


@pytest.mark.parametrize(
    ("tags", "message"),
    [
        ("nurses, " + "x" * 61, "at most 60 characters"),
        ("<b>bold</b>", "Please remove the"),
        (", ".join(f"tag{n}" for n in range(21)), "at most 20 tags"),
    ],
)
def test_bad_tags_are_refused(team, tags, message):
    response = _add(team, tags=tags)
    assert response.status_code == 422
    assert message in text(response)
    assert _rows(team["group"], "ana@example.org") == []


def test_adding_in_person_consent_lifts_an_unsubscribe_but_warns_about_a_bounce(team):
    group = team["group"]
    supporter(group, "ana@example.org", status=UpdatesStatus.UNSUBSCRIBED)
    services.suppress(group.id, "ana@example.org", SuppressionReason.UNSUBSCRIBED)
    services.suppress(group.id, "bo@example.org", SuppressionReason.HARD_BOUNCE)
    db.session.commit()

    _add(team, agreed_in_person="y")
    response = _add(team, email="bo@example.org", agreed_in_person="y")

    ana = _rows(group, "ana@example.org")[0]
    assert ana.updates_status == UpdatesStatus.SUBSCRIBED
    assert not services.is_suppressed(group.id, "ana@example.org")
    assert services.is_suppressed(group.id, "bo@example.org")
    assert "do-not-mail list" in text(team["client"].get(response.headers["Location"]))
    assert services.count_recipients(group) == 1


# --- the supporter page ------------------------------------------------------------------


def _edit(team, row, **data):
    form = {
        "first_name": row.first_name,
        "last_name": row.last_name,
        "email": row.email,
        "phone": row.phone,
        "postcode": row.postcode,
        "tags": ", ".join(tag.name for tag in row.tags),
    } | data
    return post(team["client"], f"{team['base']}/{row.id}", form)


def test_the_supporter_page_shows_details_and_consent_history(team):
    row = supporter(
        team["group"],
        "ana@example.org",
        first_name="Ana",
        postcode="E1 6AN",
        tags=["nurses"],
        status=UpdatesStatus.PENDING,
    )
    response = team["client"].get(f"{team['base']}/{row.id}")
    assert response.status_code == 200
    body = text(response)
    assert 'value="ana@example.org"' in body and 'value="E1 6AN"' in body
    assert 'value="nurses"' in body
    assert "Waiting to confirm" in body
    assert "Wording seen by ana@example.org" in body  # the wording column of the history
    assert "&#39;Get updates&#39; form" in body or "'Get updates' form" in body
    assert f"{team['base']}/{row.id}/export.json" in body
    assert f"{team['base']}/{row.id}/erase" in body
    assert f'action="{team["base"]}/{row.id}/unsubscribe"' in body


def test_editing_saves_details_and_replaces_tags(team):
    row = supporter(
        team["group"], "ana@example.org", first_name="Ana", phone="0123", tags=["stall"]
    )

    response = _edit(team, row, first_name="Ana Maria", phone="", postcode="n1 9gu", tags="nurses")

    assert response.status_code == 302
    row = reload(row)
    assert (row.first_name, row.phone, row.postcode) == ("Ana Maria", "", "N1 9GU")
    assert [tag.name for tag in row.tags] == ["nurses"]
    assert row.email == "ana@example.org"
    assert "Details saved." in text(team["client"].get(response.headers["Location"]))


def test_changing_the_address_to_a_new_one(team):
    row = supporter(team["group"], "ana@example.org", status=UpdatesStatus.UNSUBSCRIBED)
    response = _edit(team, row, email="Ana.New@Example.org")
    assert response.status_code == 302
    assert reload(row).email == "ana.new@example.org"
    # They said no: the new address is kept off the group's mail as well.
    assert services.is_suppressed(team["group"].id, "ana.new@example.org")


def test_changing_the_address_to_another_supporters_is_refused(team):
    group = team["group"]
    ana = supporter(group, "ana@example.org", first_name="Ana")
    supporter(group, "bo@example.org", first_name="Bo")

    response = _edit(team, ana, email="BO@example.org", first_name="Changed")

    assert response.status_code == 422
    body = text(response)
    assert "already has that address" in body
    assert "Merge another supporter into this one" in body
    assert reload(ana).email == "ana@example.org"
    assert reload(ana).first_name == "Ana"
    assert len(_rows(group, "bo@example.org")) == 1


def test_in_person_consent_on_the_supporter_page(team):
    row = supporter(team["group"], "ana@example.org")
    assert "They agreed in person" in text(team["client"].get(f"{team['base']}/{row.id}"))

    _edit(team, row, agreed_in_person="y")

    row = reload(row)
    assert row.updates_status == UpdatesStatus.SUBSCRIBED
    [record] = consents_of(row.id)
    assert record.method == ConsentMethod.IN_PERSON
    assert record.recorded_by_id == team["organiser"].id
    # Once they get the updates, the box is not offered again.
    assert "They agreed in person" not in text(team["client"].get(f"{team['base']}/{row.id}"))


def test_a_supporter_of_another_group_is_not_found_through_this_group(team, make):
    other_group = make.group()
    elsewhere = supporter(other_group, "elsewhere@example.org")
    response = team["client"].get(f"{team['base']}/{elsewhere.id}")
    assert response.status_code == 404
    response = _edit(team, elsewhere, first_name="Taken over")
    assert response.status_code == 404
    assert reload(elsewhere).first_name == ""


def test_the_suppression_list_is_only_touched_for_the_group(team, make):
    other_group = make.group()
    supporter(team["group"], "ana@example.org")
    _add(team, agreed_in_person="y")
    assert (
        db.session.scalar(
            select(func.count(Suppression.id)).where(Suppression.group_id == other_group.id)
        )
        == 0
    )
