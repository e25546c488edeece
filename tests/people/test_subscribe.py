"""The public 'get updates' form: double opt-in, consent recorded with its wording."""

from __future__ import annotations

from sqlalchemy import select

from campaign.extensions import db
from campaign.groups.models import GroupStatus
from campaign.people import services
from campaign.people.models import (
    ConsentAction,
    ConsentMethod,
    ConsentRecord,
    Supporter,
    Suppression,
    SuppressionReason,
    UpdatesStatus,
)
from tests.conftest import csrf_token, links_in, mail_to, path_of, post


def _subscribe(client, group, email="ana@example.org", **extra):
    data = {"first_name": "Ana", "email": email, "consent": "y"} | extra
    return post(client, f"/g/{group.slug}/subscribe", data)


def _supporter(group, email="ana@example.org") -> Supporter:
    return db.session.scalar(
        select(Supporter).where(Supporter.group_id == group.id, Supporter.email == email)
    )


def test_the_consent_box_is_never_pre_ticked_and_shows_the_wording(client, make):
    group = make.group("Riverside Health Justice")
    body = client.get(f"/g/{group.slug}/subscribe").get_data(as_text=True)
    assert 'type="checkbox"' in body and "checked" not in body
    assert "Send me email updates from Riverside Health Justice" in body


def test_subscribing_records_consent_and_mails_a_link_without_typed_text(client, make):
    group = make.group()
    response = _subscribe(client, group, first_name="Mallory <b>")
    assert response.status_code == 422  # markup in a name is refused
    response = _subscribe(client, group, first_name="Zanele")
    assert response.status_code == 302
    supporter = _supporter(group)
    assert supporter.updates_status == UpdatesStatus.PENDING
    assert supporter.source == "subscribe-form"
    [record] = supporter.consents
    assert record.action == ConsentAction.GRANTED and record.method == ConsentMethod.FORM
    assert record.wording == services.updates_wording(group)
    [message] = mail_to("ana@example.org")
    assert "Zanele" not in message.text_body and "Zanele" not in message.html_body
    assert any("/subscribe/confirm/" in link for link in links_in(message))


def test_nobody_is_subscribed_before_pressing_the_button(client, make):
    group = make.group()
    _subscribe(client, group)
    [link] = [u for u in links_in(mail_to("ana@example.org")[0]) if "/subscribe/confirm/" in u]
    page = client.get(path_of(link))
    assert page.status_code == 200 and "Yes, send me updates" in page.get_data(as_text=True)
    assert _supporter(group).updates_status == UpdatesStatus.PENDING
    assert services.count_recipients(group) == 0

    confirmed = post(client, path_of(link))
    assert confirmed.status_code == 302
    supporter = _supporter(group)
    assert supporter.updates_status == UpdatesStatus.SUBSCRIBED
    assert supporter.updates_confirmed_at is not None
    assert [r.action for r in supporter.consents] == [
        ConsentAction.GRANTED,
        ConsentAction.CONFIRMED,
    ]
    assert services.count_recipients(group) == 1

    again = post(client, path_of(link))
    assert again.status_code == 400 and "already been used" in again.get_data(as_text=True)


def test_a_second_sign_up_updates_the_same_row(client, make):
    group = make.group()
    _subscribe(client, group, email="Ana@Example.org", first_name="")
    _subscribe(client, group, email="ana@example.org ", first_name="Ana")
    rows = db.session.scalars(select(Supporter).where(Supporter.group_id == group.id)).all()
    assert len(rows) == 1 and rows[0].first_name == "Ana" and rows[0].email == "ana@example.org"


def test_the_same_address_in_two_groups_is_two_separate_supporters(client, make):
    group_a, group_b = make.group(), make.group()
    _subscribe(client, group_a)
    _subscribe(client, group_b)
    assert _supporter(group_a).id != _supporter(group_b).id


def test_the_honeypot_says_yes_and_does_nothing(client, make):
    group = make.group()
    response = _subscribe(client, group, website="http://spam.example")
    assert response.status_code == 302
    assert _supporter(group) is None and mail_to("ana@example.org") == []


def test_unticked_consent_is_refused_with_a_message(client, make):
    group = make.group()
    response = post(client, f"/g/{group.slug}/subscribe", {"email": "ana@example.org"})
    assert response.status_code == 422
    assert "Tick the box" in response.get_data(as_text=True)
    assert _supporter(group) is None


def test_pending_groups_have_no_public_subscribe_form(client, make):
    group = make.group(status=GroupStatus.PENDING)
    assert client.get(f"/g/{group.slug}/subscribe").status_code == 404


def test_confirming_again_lifts_an_unsubscribe_but_never_a_bounce(client, make):
    group = make.group()
    _subscribe(client, group)
    supporter = _supporter(group)
    services.unsubscribe(supporter, ConsentMethod.UNSUBSCRIBE_PAGE)
    db.session.commit()
    assert services.is_suppressed(group.id, supporter.email)

    _subscribe(client, group)
    link = [u for u in links_in(mail_to("ana@example.org")[-1]) if "/subscribe/confirm/" in u][0]
    post(client, path_of(link))
    assert _supporter(group).updates_status == UpdatesStatus.SUBSCRIBED
    assert not services.is_suppressed(group.id, "ana@example.org")

    services.suppress(group.id, "ana@example.org", SuppressionReason.HARD_BOUNCE)
    db.session.commit()
    assert services.count_recipients(group) == 0  # a bounce keeps them out


def test_a_stranger_cannot_flood_an_inbox_through_the_form(app, client, make):
    group = make.group()
    for _ in range(app.config["MAIL_STRANGER_DAILY_LIMIT"] + 3):
        _subscribe(client, group)
    assert len(mail_to("ana@example.org")) == app.config["MAIL_STRANGER_DAILY_LIMIT"]


def test_forged_or_tampered_links_are_refused(client, make):
    group = make.group()
    _subscribe(client, group)
    link = [u for u in links_in(mail_to("ana@example.org")[0]) if "/subscribe/confirm/" in u][0]
    response = client.get(path_of(link)[:-3] + "abc")
    assert response.status_code == 400
    response = client.post(path_of(link), data={"csrf_token": "nope"})
    assert response.status_code == 400
    assert _supporter(group).updates_status == UpdatesStatus.PENDING
    assert db.session.scalars(select(Suppression)).all() == []
    assert all(r.action == ConsentAction.GRANTED for r in db.session.scalars(select(ConsentRecord)))
    assert csrf_token(client)
