"""Unsubscribe by an organiser, data export, erasure, merging and the CSV download."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from campaign.core.outbox import OutboxMessage
from campaign.extensions import db
from campaign.people import services
from campaign.people.erasure import is_erased_address
from campaign.people.models import (
    ConsentAction,
    ConsentMethod,
    Supporter,
    Suppression,
    SuppressionReason,
    UpdatesStatus,
)
from tests.conftest import post
from tests.people.organiser_helpers import (
    audit_rows,
    consents_of,
    csv_rows,
    make_team,
    reload,
    supporter,
    text,
)


@pytest.fixture
def team(app, make):
    return make_team(app)


# --- unsubscribe --------------------------------------------------------------------------


def test_an_organiser_marks_a_supporter_as_unsubscribed(team):
    group = team["group"]
    row = supporter(group, "ana@example.org", status=UpdatesStatus.SUBSCRIBED)
    assert services.count_recipients(group) == 1

    response = post(team["client"], f"{team['base']}/{row.id}/unsubscribe")

    assert response.status_code == 302
    assert reload(row).updates_status == UpdatesStatus.UNSUBSCRIBED
    last = consents_of(row.id)[-1]
    assert (last.action, last.method) == (ConsentAction.WITHDRAWN, ConsentMethod.ORGANISER)
    assert last.recorded_by_id == team["organiser"].id
    suppression = db.session.scalar(
        select(Suppression).where(
            Suppression.group_id == group.id, Suppression.email == "ana@example.org"
        )
    )
    assert suppression is not None and suppression.reason == SuppressionReason.UNSUBSCRIBED
    assert services.count_recipients(group) == 0
    assert len(audit_rows("supporter.unsubscribed", group)) == 1
    page = text(team["client"].get(response.headers["Location"]))
    assert "they will get no more updates" in page
    assert "Marked by an organiser" in page

    again = post(team["client"], f"{team['base']}/{row.id}/unsubscribe")
    assert again.status_code == 302
    assert len(consents_of(row.id)) == 2  # the confirmation and one withdrawal, not two


def test_unsubscribe_needs_a_post(team):
    row = supporter(team["group"], "ana@example.org", status=UpdatesStatus.SUBSCRIBED)
    assert team["client"].get(f"{team['base']}/{row.id}/unsubscribe").status_code == 405
    assert reload(row).updates_status == UpdatesStatus.SUBSCRIBED


# --- export of one person's data ------------------------------------------------------------


def test_download_their_data_as_json_with_consent_history(team):
    row = supporter(
        team["group"],
        "ana@example.org",
        first_name="Ana",
        tags=["nurses"],
        status=UpdatesStatus.SUBSCRIBED,
    )

    response = team["client"].get(f"{team['base']}/{row.id}/export.json")

    assert response.status_code == 200
    assert response.mimetype == "application/json"
    disposition = response.headers["Content-Disposition"]
    assert disposition.startswith("attachment") and f"supporter-{row.id}.json" in disposition
    data = json.loads(text(response))
    assert data["email"] == "ana@example.org" and data["first_name"] == "Ana"
    assert data["tags"] == ["nurses"]
    [record] = data["consent_history"]
    assert record["action"] == "confirmed"
    assert record["wording"] == "Wording seen by ana@example.org"
    [event] = audit_rows("supporter.data_exported", team["group"])
    assert event.actor_id == team["organiser"].id and event.details["supporter"] == row.id


# --- erasure ----------------------------------------------------------------------------------


def test_erase_asks_first_and_changes_nothing_on_get(team):
    row = supporter(team["group"], "ana@example.org", first_name="Ana")
    response = team["client"].get(f"{team['base']}/{row.id}/erase")
    assert response.status_code == 200
    body = text(response)
    assert "cannot be undone" in body and "Erase their data" in body
    assert reload(row).erased_at is None


def test_erasing_removes_personal_data_everywhere(team):
    group = team["group"]
    row = supporter(
        group,
        "ana@example.org",
        first_name="Ana",
        last_name="Silva",
        phone="07700 900123",
        postcode="E1 6AN",
        tags=["nurses"],
        status=UpdatesStatus.SUBSCRIBED,
    )
    supporter(group, "bo@example.org", first_name="Bo")
    client = team["client"]
    # A consent recorded in this same session must be blanked too.
    post(client, f"{team['base']}/{row.id}/unsubscribe")

    response = post(client, f"{team['base']}/{row.id}/erase")

    assert response.status_code == 302
    assert response.headers["Location"] == team["base"]
    row = reload(row)
    assert row.email == f"erased-{row.id}@erased.invalid"
    assert (row.first_name, row.last_name, row.phone, row.postcode) == ("", "", "", "")
    assert row.tags == [] and row.erased_at is not None
    assert all(record.wording == "" and record.detail == "" for record in consents_of(row.id))
    # Never imported or added again; kept only as a keyed hash, not on the suppression list.
    assert is_erased_address(group.id, "ana@example.org")
    assert not services.is_suppressed(group.id, "ana@example.org")
    assert len(audit_rows("supporter.erased", group)) == 1

    listing = text(client.get(team["base"]))
    assert "Their personal data has been erased" in listing
    assert "ana@example.org" not in listing and "Silva" not in listing
    assert "1 supporter:" in listing and "1 more person asked to be erased" in listing
    for search in ("ana", "silva", "E1 6AN", "erased"):
        found = text(client.get(team["base"], query_string={"q": search}))
        assert "No supporters match" in found, search
        assert "erased.invalid" not in found
    emails = [r[0] for r in csv_rows(client.get(f"{team['base']}.csv"))[1:]]
    assert emails == ["bo@example.org"]
    assert client.get(f"{team['base']}/{row.id}").status_code == 404
    assert client.get(f"{team['base']}/{row.id}/export.json").status_code == 404


# --- merging two rows for one person --------------------------------------------------------


def _merge(team, target, other_email):
    return post(
        team["client"],
        f"{team['base']}/merge",
        {"target_id": str(target.id), "other_email": other_email},
    )


def test_merge_moves_tags_consents_and_missing_details(team):
    group = team["group"]
    target = supporter(
        group, "ana@example.org", first_name="Ana", tags=["stall"], status=UpdatesStatus.PENDING
    )
    other = supporter(
        group,
        "ana.work@example.org",
        first_name="Ana Maria",
        last_name="Silva",
        phone="07700 900123",
        tags=["nurses", "stall"],
        status=UpdatesStatus.SUBSCRIBED,
    )
    other_id = other.id
    other_consents = [record.id for record in consents_of(other_id)]
    db.session.add(
        OutboxMessage(
            to_addr=other.email,
            from_addr="x@example.org",
            subject="s",
            text_body="b",
            message_id="<merge-test@example.org>",
            category="marketing",
            template="t",
            group_id=group.id,
            supporter_id=other_id,
        )
    )
    db.session.commit()
    version_before = target.consent_version

    response = _merge(team, target, "Ana.Work@example.org")

    assert response.status_code == 302
    assert response.headers["Location"] == f"{team['base']}/{target.id}"
    assert db.session.get(Supporter, other_id) is None
    target = reload(target)
    assert target.email == "ana@example.org"
    assert target.first_name == "Ana"  # the target's own details are kept
    assert (target.last_name, target.phone) == ("Silva", "07700 900123")  # gaps filled
    assert sorted(tag.name for tag in target.tags) == ["nurses", "stall"]
    moved = [record.id for record in consents_of(target.id)]
    assert set(other_consents) <= set(moved) and len(moved) == 2
    assert target.updates_status == UpdatesStatus.SUBSCRIBED  # stricter than pending
    assert target.consent_version > version_before  # old emailed links stop working
    outbox = db.session.scalar(
        select(OutboxMessage).where(OutboxMessage.message_id == "<merge-test@example.org>")
    )
    assert outbox.supporter_id == target.id
    [event] = audit_rows("supporter.merged", group)
    assert event.details == {"supporter": target.id, "merged": other_id}
    assert "is now part of this supporter" in text(team["client"].get(response.headers["Location"]))


@pytest.mark.parametrize(
    ("target_status", "other_status", "expected"),
    [
        (UpdatesStatus.SUBSCRIBED, UpdatesStatus.UNSUBSCRIBED, UpdatesStatus.UNSUBSCRIBED),
        (UpdatesStatus.UNSUBSCRIBED, UpdatesStatus.SUBSCRIBED, UpdatesStatus.UNSUBSCRIBED),
        (UpdatesStatus.PENDING, UpdatesStatus.SUBSCRIBED, UpdatesStatus.SUBSCRIBED),
        (UpdatesStatus.SUBSCRIBED, UpdatesStatus.PENDING, UpdatesStatus.SUBSCRIBED),
        (UpdatesStatus.NONE, UpdatesStatus.PENDING, UpdatesStatus.PENDING),
        (UpdatesStatus.PENDING, UpdatesStatus.NONE, UpdatesStatus.PENDING),
    ],
)
def test_merge_keeps_the_stricter_status(team, target_status, other_status, expected):
    group = team["group"]
    target = supporter(group, "ana@example.org", status=target_status)
    supporter(group, "ana.work@example.org", status=other_status)

    assert _merge(team, target, "ana.work@example.org").status_code == 302

    assert reload(target).updates_status == expected
    if expected == UpdatesStatus.UNSUBSCRIBED:
        # Neither address may be mailed again, whichever row said no.
        assert services.is_suppressed(group.id, "ana@example.org")
        assert services.count_recipients(group) == 0


def test_merge_refuses_an_address_that_is_not_in_the_group(team, make):
    group = team["group"]
    target = supporter(group, "ana@example.org")
    elsewhere = supporter(make.group(), "other-group@example.org", first_name="Elsewhere")

    response = _merge(team, target, "other-group@example.org")

    assert response.status_code == 422
    assert "No supporter of this group has that address" in text(response)
    assert reload(elsewhere) is not None and reload(elsewhere).group_id != group.id
    assert audit_rows("supporter.merged", group) == []


def test_merge_refuses_the_supporters_own_address(team):
    target = supporter(team["group"], "ana@example.org")
    response = _merge(team, target, "ana@example.org")
    assert response.status_code == 422
    assert "own address" in text(response)
    assert reload(target) is not None


def test_merge_into_a_supporter_of_another_group_is_not_found(team, make):
    elsewhere = supporter(make.group(), "elsewhere@example.org")
    supporter(team["group"], "ana@example.org")
    response = _merge(team, elsewhere, "ana@example.org")
    assert response.status_code == 404
    assert reload(elsewhere) is not None
    assert len(consents_of(elsewhere.id)) == 0


# --- the CSV download -----------------------------------------------------------------------


def test_csv_has_the_columns_and_neutralises_formulas(team):
    group = team["group"]
    supporter(
        group,
        "ana@example.org",
        first_name='=HYPERLINK("http://evil.example")',
        last_name="@SUM(A1)",
        phone="+44 7700 900123",
        postcode="E1 6AN",
        tags=["nurses", "-stall"],
        status=UpdatesStatus.SUBSCRIBED,
    )

    response = team["client"].get(f"{team['base']}.csv")

    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    disposition = response.headers["Content-Disposition"]
    assert disposition.startswith("attachment") and f"{group.slug}-supporters.csv" in disposition
    header, row = csv_rows(response)
    assert header == [
        "email",
        "first_name",
        "last_name",
        "phone",
        "postcode",
        "tags",
        "updates_status",
        "source",
        "added",
    ]
    record = dict(zip(header, row, strict=True))
    assert record["email"] == "ana@example.org"
    assert record["first_name"] == '\'=HYPERLINK("http://evil.example")'
    assert record["last_name"] == "'@SUM(A1)"
    assert record["phone"] == "'+44 7700 900123"
    assert record["postcode"] == "E1 6AN"
    assert record["tags"] == "'-stall;nurses"
    assert record["updates_status"] == "subscribed"
    assert record["source"] == "test"
    assert len(record["added"]) == 10 and record["added"][4] == "-"  # an ISO date
    [event] = audit_rows("supporter.exported_csv", group)
    assert event.details == {"count": 1} and event.actor_id == team["organiser"].id


def test_csv_applies_the_lists_filters(team, make):
    group = team["group"]
    supporter(group, "ana@example.org", first_name="Ana", tags=["nurses"],
              status=UpdatesStatus.SUBSCRIBED)  # fmt: skip
    bo = supporter(group, "bo@example.org", first_name="Bo", tags=["nurses"],
                   status=UpdatesStatus.UNSUBSCRIBED)  # fmt: skip
    supporter(group, "cy@example.org", first_name="Cy", status=UpdatesStatus.SUBSCRIBED)
    supporter(make.group(), "elsewhere@example.org", status=UpdatesStatus.SUBSCRIBED)
    nurses = bo.tags[0].id
    client = team["client"]

    def emails(**params):
        return sorted(
            r[0] for r in csv_rows(client.get(f"{team['base']}.csv", query_string=params))[1:]
        )

    assert emails() == ["ana@example.org", "bo@example.org", "cy@example.org"]
    assert emails(status="subscribed") == ["ana@example.org", "cy@example.org"]
    assert emails(tag=nurses) == ["ana@example.org", "bo@example.org"]
    assert emails(tag=nurses, status="subscribed") == ["ana@example.org"]
    assert emails(q="bo") == ["bo@example.org"]
    counts = [e.details["count"] for e in audit_rows("supporter.exported_csv", group)]
    assert counts == [3, 2, 2, 1, 1]
    # The list links to the CSV of what it shows.
    page = text(client.get(team["base"], query_string={"status": "subscribed", "q": "a"}))
    assert f"{team['base']}.csv?q=a&amp;status=subscribed" in page


def test_csv_refuses_a_tag_of_another_group(team, make):
    elsewhere = supporter(make.group(), "elsewhere@example.org", tags=["secret"])
    supporter(team["group"], "ana@example.org")
    response = team["client"].get(f"{team['base']}.csv", query_string={"tag": elsewhere.tags[0].id})
    assert response.status_code == 400
    assert "ana@example.org" not in text(response)
    assert audit_rows("supporter.exported_csv", team["group"]) == []


def test_erasure_scrubs_their_mail_from_the_outbox(app, make):
    from sqlalchemy import select

    from campaign.core.outbox import OutboxMessage, OutboxStatus, queue_email
    from campaign.extensions import db
    from campaign.people import services as people_services

    group, organiser = make.group(), make.user()
    with app.test_request_context():
        supporter, _ = people_services.upsert_supporter(group, "erase-me@example.org")
        sent = queue_email("erase-me@example.org", "password_changed", group_id=group.id)
        waiting = queue_email(
            "erase-me@example.org", "password_changed", group_id=group.id,
            supporter_id=supporter.id,
        )  # fmt: skip
        other_group = queue_email("erase-me@example.org", "password_changed", group_id=None)
        sent.status = OutboxStatus.SENT
        db.session.flush()
        people_services.erase_supporter(organiser, supporter)
        db.session.flush()
        rows = {row.id: row for row in db.session.scalars(select(OutboxMessage))}
        for row_id in (sent.id, waiting.id):
            db.session.refresh(rows[row_id])
            assert rows[row_id].to_addr.endswith("@erased.invalid")
            assert rows[row_id].text_body == "" and rows[row_id].html_body is None
        assert rows[sent.id].status == OutboxStatus.SENT
        assert rows[waiting.id].status == OutboxStatus.SKIPPED
        # Mail that was not this group's (an account email) is not this group's to erase.
        assert rows[other_group.id].to_addr == "erase-me@example.org"
