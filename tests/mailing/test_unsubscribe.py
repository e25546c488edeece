"""Unsubscribing: one button, RFC 8058 one-click, preferences across groups; never on GET."""

from __future__ import annotations

from sqlalchemy import select

from campaign.core.outbox import OutboxStatus, queue_email
from campaign.extensions import db
from campaign.mailing import services
from campaign.people.models import (
    ConsentAction,
    ConsentMethod,
    ConsentRecord,
    Suppression,
    UpdatesStatus,
)
from campaign.people.services import unsubscribe_token
from tests.conftest import CSRF_RE, mail_to
from tests.mailing.helpers import add_draft, add_supporter, rows_of


def _state(supporter) -> tuple:
    db.session.refresh(supporter)
    records = db.session.scalars(
        select(ConsentRecord.action).where(ConsentRecord.supporter_id == supporter.id)
    ).all()
    suppressed = db.session.scalar(
        select(Suppression.id).where(
            Suppression.group_id == supporter.group_id, Suppression.email == supporter.email
        )
    )
    return supporter.updates_status, supporter.consent_version, tuple(records), suppressed


def _token(app, supporter) -> str:
    with app.test_request_context():
        return unsubscribe_token(supporter)


def test_get_shows_one_button_and_changes_nothing(app, client, group):
    supporter = add_supporter(group, "ana@example.org")
    before = _state(supporter)
    for _ in range(3):  # a mail scanner opening the link, then the person
        response = client.get(f"/unsubscribe/{_token(app, supporter)}")
        assert response.status_code == 200
    body = response.get_data(as_text=True)
    assert "Unsubscribe from Riverside Health Justice" in body
    assert body.count('type="submit"') == 1 + body.count("Log out")
    assert "a•••@example.org" in body and "ana@example.org" not in body
    assert client.get(f"/unsubscribe/{_token(app, supporter)}/preferences").status_code == 200
    assert _state(supporter) == before
    assert supporter.updates_status == UpdatesStatus.SUBSCRIBED


def test_button_post_with_csrf_unsubscribes(app, client, group):
    supporter = add_supporter(group, "ana@example.org")
    url = f"/unsubscribe/{_token(app, supporter)}"
    token = CSRF_RE.search(client.get(url).get_data(as_text=True)).group(1)
    response = client.post(url, data={"csrf_token": token})
    assert response.status_code == 302
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "You are unsubscribed" in page
    assert f"{url}/preferences" in page
    db.session.refresh(supporter)
    assert supporter.updates_status == UpdatesStatus.UNSUBSCRIBED
    assert supporter.consents[-1].method == ConsentMethod.UNSUBSCRIBE_PAGE


def test_form_post_without_or_with_a_wrong_csrf_token_is_refused(app, client, group):
    supporter = add_supporter(group, "ana@example.org")
    before = _state(supporter)
    url = f"/unsubscribe/{_token(app, supporter)}"
    client.get(url)
    for data in ({}, {"csrf_token": "forged"}, {"List-Unsubscribe": "yes please"}):
        response = client.post(url, data=data)
        assert response.status_code == 400, data
        assert "The form had expired" in response.get_data(as_text=True)
    assert _state(supporter) == before


def test_one_click_post_works_with_no_session_and_no_csrf(app, group):
    supporter = add_supporter(group, "ana@example.org")
    url = f"/unsubscribe/{_token(app, supporter)}"
    fresh = app.test_client()  # a mail provider's server: no cookies, no form
    response = fresh.post(
        url,
        data="List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 200
    assert "Set-Cookie" not in response.headers
    db.session.refresh(supporter)
    assert supporter.updates_status == UpdatesStatus.UNSUBSCRIBED
    assert supporter.consents[-1].action == ConsentAction.WITHDRAWN
    assert supporter.consents[-1].method == ConsentMethod.ONE_CLICK
    # A client that forgets the content type is understood too.
    bare = fresh.post(url, data=b"List-Unsubscribe=One-Click", content_type="")
    assert bare.status_code == 200
    # Mail clients may repeat it: still fine, nothing recorded twice.
    again = fresh.post(url, data={"List-Unsubscribe": "One-Click"})
    assert again.status_code == 200
    assert len([c for c in supporter.consents if c.action == ConsentAction.WITHDRAWN]) == 1


def test_broken_links_are_a_clear_400(app, client, group):
    supporter = add_supporter(group, "ana@example.org")
    token = _token(app, supporter)
    for bad in (token[:-3] + "abc", "example", "x"):
        assert client.get(f"/unsubscribe/{bad}").status_code == 400
        assert client.post(f"/unsubscribe/{bad}",
                           data={"List-Unsubscribe": "One-Click"}).status_code == 400  # fmt: skip
        assert client.get(f"/unsubscribe/{bad}/preferences").status_code == 400
    db.session.refresh(supporter)
    assert supporter.updates_status == UpdatesStatus.SUBSCRIBED


def test_unsubscribed_person_is_left_out_of_the_next_send(app, group, organiser):
    stays = add_supporter(group, "stays@example.org")
    leaves = add_supporter(group, "leaves@example.org")
    first = add_draft(group)
    with app.test_request_context():
        services.send_now(organiser, group, first)
    db.session.commit()
    row = next(r for r in rows_of(first) if r.to_addr == "leaves@example.org")
    one_click = row.headers["List-Unsubscribe"].split(">")[0].lstrip("<")
    assert (
        app.test_client().post(one_click, data={"List-Unsubscribe": "One-Click"}).status_code == 200
    )

    second = add_draft(group, subject="Next week")
    with app.test_request_context():
        assert services.send_now(organiser, group, second) == 1
    assert [r.supporter_id for r in rows_of(second)] == [stays.id]
    db.session.refresh(leaves)
    assert leaves.updates_status == UpdatesStatus.UNSUBSCRIBED


def test_unsubscribing_skips_their_campaign_mail_still_waiting(app, group, organiser):
    supporter = add_supporter(group, "ana@example.org")
    mailing = add_draft(group)
    with app.test_request_context():
        services.send_now(organiser, group, mailing)
        services.unsubscribe_from_group(supporter, ConsentMethod.UNSUBSCRIBE_PAGE)
    [row] = rows_of(mailing)
    db.session.refresh(row)
    assert row.status == OutboxStatus.SKIPPED
    assert services.refresh_status(mailing).status == "sent"


def test_transactional_mail_still_reaches_an_unsubscribed_person(app, group):
    supporter = add_supporter(group, "ana@example.org")
    with app.test_request_context():
        services.unsubscribe_from_group(supporter, ConsentMethod.ONE_CLICK)
        queue_email("ana@example.org", "password_changed")
    [message] = mail_to("ana@example.org")
    assert message.category == "transactional"


def test_preferences_can_leave_every_group_for_this_address_only(app, client, group, make):
    here = add_supporter(group, "ana@example.org")
    elsewhere = add_supporter(make.group("Secret Other Group"), "ana@example.org")
    pending_elsewhere = add_supporter(
        make.group("Third Group"), "ana@example.org", status=UpdatesStatus.PENDING
    )
    someone_else = add_supporter(make.group("Fourth Group"), "bea@example.org")
    url = f"/unsubscribe/{_token(app, here)}/preferences"
    page = client.get(url).get_data(as_text=True)
    assert "Secret Other Group" not in page and "Third Group" not in page
    token = CSRF_RE.search(page).group(1)
    response = client.post(url, data={"scope": "all", "csrf_token": token})
    assert response.status_code == 302
    done = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "no group on Campaign will send updates to this address" in done
    assert "Secret Other Group" not in done
    for row in (here, elsewhere, pending_elsewhere):
        db.session.refresh(row)
        assert row.updates_status == UpdatesStatus.UNSUBSCRIBED
    db.session.refresh(someone_else)
    assert someone_else.updates_status == UpdatesStatus.SUBSCRIBED
    # Each group's list now keeps the address off its mail.
    for row in (here, elsewhere, pending_elsewhere):
        assert services.recipient_count(row.group, None) == 0


def test_preferences_this_group_only_and_no_csrf_refused(app, client, group, make):
    here = add_supporter(group, "ana@example.org")
    elsewhere = add_supporter(make.group("Other"), "ana@example.org")
    url = f"/unsubscribe/{_token(app, here)}/preferences"
    assert client.post(url, data={"scope": "group"}).status_code == 400
    token = CSRF_RE.search(client.get(url).get_data(as_text=True)).group(1)
    assert client.post(url, data={"scope": "group", "csrf_token": token}).status_code == 302
    db.session.refresh(here)
    db.session.refresh(elsewhere)
    assert here.updates_status == UpdatesStatus.UNSUBSCRIBED
    assert elsewhere.updates_status == UpdatesStatus.SUBSCRIBED
