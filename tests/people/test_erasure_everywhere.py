"""Erasure reaches everything: sign-ups, consent history, imports, campaign mail and its
delivery errors, calendar files. Afterwards the address is only a keyed hash: imports
and organisers skip it, the person may sign up again themself."""

from __future__ import annotations

import io
import json
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy import func, select

from campaign.actions.models import Action, ActionSignup, ActionStatus, SignupStatus
from campaign.core.audit import AuditEvent
from campaign.core.erasure import address_hash
from campaign.core.models import Base, utcnow
from campaign.core.outbox import OutboxMessage, OutboxStatus
from campaign.extensions import db
from campaign.people import services
from campaign.people.models import ErasedAddress, Supporter, UpdatesStatus
from tests.conftest import csrf_token, links_in, login, mail_to, path_of, post
from tests.mailing.helpers import add_draft, send_now_through_pages

EMAIL = "Zuleika.Okonkwo@example.org"
FIRST, LAST = "Zuleika", "Okonkwo-Brathwaite"
PHONE = "07700 900417"
ACCESS_NEEDS = "Wheelchair user: needs step-free entrance and a quiet room after dialysis"
NEEDLES = [EMAIL.lower(), FIRST, LAST, PHONE, "step-free entrance", "dialysis"]


def _upload_and_import(client, group, data: bytes, statement: str = "") -> str:
    response = client.post(
        f"/g/{group.slug}/people/import",
        data={"csrf_token": csrf_token(client), "file": (io.BytesIO(data), "list.csv")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 302
    form = {"csrf_token": csrf_token(client), "column-0": "email", "column-1": "first_name",
            "column-2": "last_name", "column-3": "phone"}  # fmt: skip
    if statement:
        form |= {"agreed": "y", "statement": statement}
    started = client.post(response.headers["Location"], data=form)
    # The import runs as a background job (in-process here); its page shows the report.
    assert started.status_code == 302, started.get_data(as_text=True)[:400]
    report = client.get(started.headers["Location"])
    assert report.status_code == 200, report.get_data(as_text=True)[:400]
    return report.get_data(as_text=True)


def _action(group) -> Action:
    starts = utcnow() + timedelta(days=5)
    action = Action(group_id=group.id, title="Vigil at the Trust", status=ActionStatus.PUBLISHED,
                    starts_at=starts, ends_at=starts + timedelta(hours=2), place_name="Main gate",
                    address="1 Hospital Road", capacity=1, area="Riverside")  # fmt: skip
    db.session.add(action)
    db.session.commit()
    return action


def _text_columns() -> list[sa.Column]:
    return [
        column
        for table in Base.metadata.sorted_tables
        for column in table.columns
        if isinstance(column.type, sa.String | sa.Text | sa.JSON | sa.Enum)
    ]


def _found_anywhere(needle: str) -> list[str]:
    """Every table.column whose value contains the needle, ignoring case."""
    hits = []
    for column in _text_columns():
        value = sa.func.lower(sa.cast(column, sa.Text))
        query = (
            select(func.count())
            .select_from(column.table)
            .where(value.contains(needle.lower(), autoescape=True))
        )
        if db.session.scalar(query):
            hits.append(f"{column.table.name}.{column.name}")
    return hits


@pytest.fixture
def setting(app, client, make, smtp_sink):
    organiser = make.user("organiser@example.org", name="Olu Organiser")
    group = make.group("Riverside Health Justice", organiser=organiser)
    login(client, organiser)
    # An import row, with the organiser's statement of how people agreed (consent history).
    body = _upload_and_import(
        client, group,
        f"Email,First,Last,Phone\n{EMAIL},{FIRST},{LAST},{PHONE}\nbo@example.org,Bo,Bell,\n"
        .encode(),
        statement="Signed the sheet at the March public meeting",
    )  # fmt: skip
    assert "2 new supporters added" in body
    # A public sign-up with name, phone and access needs; its mail carries a calendar file.
    action = _action(group)
    visitor = app.test_client()
    response = post(visitor, f"/g/{group.slug}/actions/{action.id}",
                    {"email": EMAIL, "name": f"{FIRST} {LAST}", "phone": PHONE,
                     "access_needs": ACCESS_NEEDS})  # fmt: skip
    assert response.status_code == 302
    # Someone on the waitlist behind them, who gets the place when it is given up.
    post(visitor, f"/g/{group.slug}/actions/{action.id}", {"email": "cy@example.org", "name": "Cy"})
    # A real campaign mailing; the relay refuses their address, so the row keeps the
    # relay's error text (which quotes the address) and the group suppresses it.
    smtp_sink.refuse[EMAIL.lower()] = f"550 5.1.1 <{EMAIL.lower()}>: no such mailbox here"
    mailing = add_draft(group, subject="Rally on Saturday", body="Hello {{first_name}}!")
    db.session.commit()
    response = send_now_through_pages(client, group, mailing)
    assert response.status_code == 302
    supporter = db.session.scalar(
        select(Supporter).where(Supporter.group_id == group.id, Supporter.email == EMAIL.lower())
    )
    return {"group": group, "organiser": organiser, "supporter": supporter, "action": action,
            "mailing": mailing, "visitor": visitor}  # fmt: skip


def test_before_erasure_their_data_is_in_all_those_places(setting):
    """The search below can find them: it is what proves the erasure."""
    group, supporter = setting["group"], setting["supporter"]
    where = set(_found_anywhere(EMAIL))
    assert {"supporters.email", "action_signups.email", "outbox_messages.to_addr",
            "outbox_messages.last_error", "suppressions.email"} <= where  # fmt: skip
    assert "outbox_messages.text_body" in _found_anywhere(FIRST)  # the mailing, merged
    # Phone numbers and access needs are sealed at rest: the plain search never finds
    # them, so the erasure of those columns is proved through the ORM (they open to "").
    assert _found_anywhere("dialysis") == []
    assert _found_anywhere(PHONE) == []
    signup = db.session.scalar(select(ActionSignup).where(ActionSignup.email == EMAIL.lower()))
    assert ACCESS_NEEDS in signup.access_needs and signup.phone == PHONE
    mailing_row = db.session.scalar(
        select(OutboxMessage).where(OutboxMessage.mailing_id == setting["mailing"].id,
                                    OutboxMessage.supporter_id == supporter.id)
    )  # fmt: skip
    assert mailing_row.status == OutboxStatus.FAILED and EMAIL.lower() in mailing_row.last_error
    assert any(m.calendar for m in mail_to(EMAIL))
    assert len(services.consent_history(supporter)) == 1 and group


def test_after_erasure_no_text_column_of_any_table_holds_them(setting, client):
    group, supporter, action = setting["group"], setting["supporter"], setting["action"]
    response = post(client, f"/g/{group.slug}/people/{supporter.id}/erase")
    assert response.status_code == 302

    for needle in NEEDLES:
        assert _found_anywhere(needle) == [], needle
    # The counts stay: the supporter row, the sign-up and the mail rows still exist.
    signup = db.session.scalar(select(ActionSignup).where(ActionSignup.action_id == action.id,
                                                          ActionSignup.name == ""))  # fmt: skip
    assert signup.supporter_id is None and signup.status == SignupStatus.CANCELLED
    assert not signup.has_email
    # The sealed columns hold nothing at all, not even a ciphertext of the old value.
    assert (signup.phone_sealed, signup.access_needs_sealed) == ("", "")
    assert db.session.get(Supporter, supporter.id).phone_sealed == ""
    # The place they held went to the person waiting for it.
    cy = db.session.scalar(select(ActionSignup).where(ActionSignup.email == "cy@example.org"))
    assert cy.status == SignupStatus.CONFIRMED
    assert db.session.get(Supporter, supporter.id).erased_at is not None
    rows = db.session.scalars(select(OutboxMessage).where(OutboxMessage.group_id == group.id))
    assert all(
        not (row.calendar or row.last_error) for row in rows if row.to_addr.startswith("erased")
    )
    # Their address is remembered only as a keyed hash.
    assert db.session.scalar(
        select(ErasedAddress).where(ErasedAddress.group_id == group.id)
    ).address_hash == address_hash(EMAIL)
    # The audit row says it happened and who did it, with nothing of the person's.
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.event == "supporter.erased"))
    assert event.actor_id == setting["organiser"].id
    assert event.details == {"supporter": supporter.id, "by": "organiser"}


def test_an_erased_address_in_a_later_import_is_skipped_and_counted(setting, client):
    group, supporter = setting["group"], setting["supporter"]
    post(client, f"/g/{group.slug}/people/{supporter.id}/erase")
    body = _upload_and_import(
        client, group,
        f"Email,First,Last,Phone\n{EMAIL.upper()},{FIRST},{LAST},{PHONE}\n"
        f"new@example.org,Nia,,\n{EMAIL},{FIRST},,\n".encode(),
    )  # fmt: skip
    assert "2 rows skipped: erased on request" in body
    assert "1 new supporter added" in body
    for needle in NEEDLES:
        assert _found_anywhere(needle) == [], needle
    event = db.session.scalars(
        select(AuditEvent).where(AuditEvent.event == "supporters.imported")
        .order_by(AuditEvent.id.desc())
    ).first()  # fmt: skip
    assert event.details["skipped_erased"] == 2


def test_an_organiser_cannot_add_an_erased_address_back(setting, client):
    group, supporter = setting["group"], setting["supporter"]
    post(client, f"/g/{group.slug}/people/{supporter.id}/erase")
    response = post(client, f"/g/{group.slug}/people/new",
                    {"email": EMAIL, "first_name": FIRST})  # fmt: skip
    assert response.status_code == 422
    assert "asked the group to erase their data" in response.get_data(as_text=True)
    assert _found_anywhere(EMAIL) == [] and _found_anywhere(FIRST) == []
    # Nor by changing another supporter's address to it.
    bo = db.session.scalar(select(Supporter).where(Supporter.email == "bo@example.org"))
    response = post(client, f"/g/{group.slug}/people/{bo.id}",
                    {"email": EMAIL, "first_name": "Bo"})  # fmt: skip
    assert response.status_code == 422
    assert _found_anywhere(EMAIL) == []


def test_the_person_may_subscribe_again_themself(setting, client, app):
    group, supporter = setting["group"], setting["supporter"]
    post(client, f"/g/{group.slug}/people/{supporter.id}/erase")
    visitor = app.test_client()
    response = post(visitor, f"/g/{group.slug}/subscribe",
                    {"first_name": FIRST, "email": EMAIL, "consent": "y"})  # fmt: skip
    assert response.status_code == 302
    # Typing an address proves nothing: the hash goes when the owner confirms by email.
    assert db.session.scalar(select(func.count()).select_from(ErasedAddress)) == 1
    [link] = [u for u in links_in(mail_to(EMAIL)[-1]) if "/subscribe/confirm/" in u]
    assert post(visitor, path_of(link)).status_code in (200, 302)
    assert db.session.scalar(select(func.count()).select_from(ErasedAddress)) == 0
    again = db.session.scalar(
        select(Supporter).where(Supporter.group_id == group.id, Supporter.email == EMAIL.lower())
    )
    assert again.id != supporter.id and again.updates_status == UpdatesStatus.SUBSCRIBED
    # Now an import updates them like anyone else.
    body = _upload_and_import(client, group, f"Email,First,Last,Phone\n{EMAIL},,,\n".encode())
    assert "skipped: erased on request" not in body and "1 supporter already" in body


def test_the_person_may_sign_up_for_an_action_again(setting, client, app):
    group, supporter = setting["group"], setting["supporter"]
    post(client, f"/g/{group.slug}/people/{supporter.id}/erase")
    starts = utcnow() + timedelta(days=9)
    action = Action(group_id=group.id, title="Stall", status=ActionStatus.PUBLISHED,
                    starts_at=starts, ends_at=starts + timedelta(hours=1),
                    area="Riverside")  # fmt: skip
    db.session.add(action)
    db.session.commit()
    response = post(app.test_client(), f"/g/{group.slug}/actions/{action.id}",
                    {"email": EMAIL, "name": FIRST})  # fmt: skip
    assert response.status_code == 302
    assert db.session.scalar(select(func.count()).select_from(ErasedAddress)) == 0


def test_the_data_download_includes_sign_ups_and_mail(setting, client):
    group, supporter = setting["group"], setting["supporter"]
    response = client.get(f"/g/{group.slug}/people/{supporter.id}/export.json")
    data = json.loads(response.get_data(as_text=True))
    assert data["email"] == EMAIL.lower() and data["last_name"] == LAST
    [signup] = data["action_signups"]
    assert signup["action"] == "Vigil at the Trust" and signup["access_needs"] == ACCESS_NEEDS
    assert signup["phone"] == PHONE and signup["status"] == "confirmed"
    assert {"Rally on Saturday"} <= {mail["subject"] for mail in data["emails"]}
    assert data["consent_history"][0]["wording"] == "Signed the sheet at the March public meeting"


def test_a_sign_up_for_a_past_action_keeps_its_status_and_attendance(make, app):
    group = make.group("Riverside Health Justice")
    started = utcnow() - timedelta(days=3)
    action = Action(group_id=group.id, title="March", status=ActionStatus.PUBLISHED,
                    starts_at=started, ends_at=started + timedelta(hours=2),
                    area="Riverside")  # fmt: skip
    db.session.add(action)
    db.session.flush()
    supporter, _ = services.upsert_supporter(group, EMAIL, first_name=FIRST)
    signup = ActionSignup(action_id=action.id, group_id=group.id, supporter_id=supporter.id,
                          email=EMAIL.lower(), name=FIRST, phone=PHONE, access_needs=ACCESS_NEEDS,
                          status=SignupStatus.CONFIRMED, checked_in_at=started)  # fmt: skip
    db.session.add(signup)
    db.session.commit()
    with app.test_request_context():
        services.erase_supporter(None, supporter)
    db.session.commit()
    db.session.refresh(signup)
    assert signup.status == SignupStatus.CONFIRMED and signup.checked_in_at is not None
    assert (signup.name, signup.phone, signup.access_needs) == ("", "", "")
    assert signup.supporter_id is None and not signup.has_email
    for needle in NEEDLES:
        assert _found_anywhere(needle) == [], needle
