"""A supporter's own requests: their data and its erasure, through a one-hour link sent
to their address. The years-long unsubscribe link (a forwarded email) opens neither."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from campaign.actions.models import Action, ActionStatus
from campaign.actions.services import sign_up
from campaign.core.audit import AuditEvent
from campaign.core.models import utcnow
from campaign.extensions import db
from campaign.mailing import services as mailing_services
from campaign.people import services
from campaign.people.erasure import is_erased_address
from campaign.people.models import Supporter, UpdatesStatus
from tests.conftest import csrf_token, links_in, mail_to, path_of, post


@pytest.fixture
def person(app, make):
    group = make.group("Riverside Health Justice")
    supporter, _ = services.upsert_supporter(group, "nadia@example.org", first_name="Nadia")
    supporter.updates_status = UpdatesStatus.SUBSCRIBED
    starts = utcnow() + timedelta(days=4)
    action = Action(group_id=group.id, title="Stall on the high street",
                    status=ActionStatus.PUBLISHED, starts_at=starts,
                    ends_at=starts + timedelta(hours=2), area="Riverside")  # fmt: skip
    db.session.add(action)
    db.session.flush()
    with app.test_request_context():
        sign_up(action, email="nadia@example.org", name="Nadia Haddad", phone="07700 900555",
                access_needs="Hearing loop, please")  # fmt: skip
    db.session.commit()
    return group, supporter, services.unsubscribe_token(supporter)


def _ask_for_link(client, token) -> str:
    response = post(client, f"/unsubscribe/{token}/my-data")
    assert response.status_code == 302
    [message] = [m for m in mail_to("nadia@example.org") if m.template == "data_access_link"][-1:]
    [link] = [url for url in links_in(message) if "/my-data/" in url]
    return path_of(link)


def test_the_unsubscribe_link_alone_neither_downloads_nor_erases(client, person):
    group, supporter, token = person
    page = client.get(f"/unsubscribe/{token}/preferences").get_data(as_text=True)
    assert "Email me a link to my data" in page and "Download my data" not in page
    response = post(client, f"/unsubscribe/{token}/my-data")
    assert response.status_code == 302 and "attachment" not in response.headers.get(
        "Content-Disposition", ""
    )
    assert post(client, f"/unsubscribe/{token}/erase").status_code == 404
    # The unsubscribe token is no key to the new pages either (another purpose).
    assert client.get(f"/my-data/{token}").status_code == 400
    assert post(client, f"/my-data/{token}/download").status_code == 400
    assert post(client, f"/my-data/{token}/erase").status_code == 400
    assert db.session.get(Supporter, supporter.id).erased_at is None


def test_the_link_is_mailed_to_the_address_with_nothing_typed(client, person):
    group, supporter, token = person
    response = post(client, f"/unsubscribe/{token}/my-data")
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "We have emailed a link to n•••@example.org" in page
    [message] = [m for m in mail_to("nadia@example.org") if m.template == "data_access_link"]
    assert message.category == "stranger" and "Nadia" not in message.text_body
    assert "60 minutes" in message.text_body


def test_the_emailed_link_downloads_their_data_with_sign_ups(client, person):
    group, supporter, token = person
    link = _ask_for_link(client, token)
    page = client.get(link)
    assert page.status_code == 200 and "Download my data" in page.get_data(as_text=True)
    assert client.get(f"{link}/download").status_code == 405  # never on GET
    response = post(client, f"{link}/download")
    assert response.status_code == 200
    assert "attachment" in response.headers["Content-Disposition"]
    data = json.loads(response.get_data(as_text=True))
    assert data["email"] == "nadia@example.org" and data["first_name"] == "Nadia"
    [signup] = data["action_signups"]
    assert signup["name"] == "Nadia Haddad" and signup["access_needs"] == "Hearing loop, please"
    assert signup["phone"] == "07700 900555"
    event = db.session.scalar(
        select(AuditEvent).where(AuditEvent.event == "supporter.data_exported")
    )
    assert event.ip_address is None and event.actor_id is None


def test_the_emailed_link_erases_after_a_confirm_button(client, person):
    group, supporter, token = person
    link = _ask_for_link(client, token)
    page = client.get(f"{link}/erase")
    assert page.status_code == 200 and "cannot be undone" in page.get_data(as_text=True)
    assert db.session.get(Supporter, supporter.id).erased_at is None  # GET changes nothing
    assert client.post(f"{link}/erase", data={}).status_code == 400  # no CSRF token
    response = post(client, f"{link}/erase")
    assert response.status_code == 200 and "erased" in response.get_data(as_text=True)
    row = db.session.get(Supporter, supporter.id)
    assert row.erased_at is not None and row.first_name == "" and "nadia" not in row.email
    assert is_erased_address(group.id, "nadia@example.org")
    assert not services.is_suppressed(group.id, "nadia@example.org")  # only the hash is kept
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.event == "supporter.erased"))
    assert event.actor_id is None and event.details["by"].startswith("the person")
    assert event.ip_address is None
    assert "nadia" not in json.dumps(event.details)
    # The link has done its work: it shows a clear message, nothing of theirs.
    again = client.get(link)
    assert again.status_code == 400 and "have been erased" in again.get_data(as_text=True)
    assert post(client, f"{link}/download").status_code == 400


def test_an_expired_link_says_so(client, person, monkeypatch):
    group, supporter, token = person
    link = _ask_for_link(client, token)
    monkeypatch.setattr(mailing_services, "DATA_LINK_MAX_AGE", -1)
    response = client.get(link)
    assert response.status_code == 400
    assert "worked for one hour and has expired" in response.get_data(as_text=True)
    assert post(client, f"{link}/erase").status_code == 400
    assert db.session.get(Supporter, supporter.id).erased_at is None


def test_a_tampered_link_is_refused(client, person):
    group, supporter, token = person
    link = _ask_for_link(client, token)
    response = client.get(link[:-3] + "abc")
    assert response.status_code == 400 and "not valid" in response.get_data(as_text=True)


def test_the_link_mail_is_limited_per_address(client, person, app, monkeypatch):
    group, supporter, token = person
    monkeypatch.setitem(app.config, "MAIL_STRANGER_DAILY_LIMIT", 2)
    for _ in range(4):
        response = post(client, f"/unsubscribe/{token}/my-data")
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "already sent several emails to this address today" in page
    # The sign-up confirmation was the first of the two allowed today.
    sent = [m for m in mail_to("nadia@example.org") if m.template == "data_access_link"]
    assert len(sent) == 1


def test_asking_without_the_csrf_token_is_refused(client, person):
    group, supporter, token = person
    response = client.post(f"/unsubscribe/{token}/my-data", data={})
    assert response.status_code == 400
    assert not [m for m in mail_to("nadia@example.org") if m.template == "data_access_link"]
    csrf_token(client)  # the page still works afterwards


def test_after_unsubscribing_the_person_can_still_get_the_link_and_erase(client, person):
    group, supporter, token = person
    assert post(client, f"/unsubscribe/{token}").status_code == 302
    assert db.session.get(Supporter, supporter.id).updates_status == UpdatesStatus.UNSUBSCRIBED
    link = _ask_for_link(client, token)
    assert post(client, f"{link}/erase").status_code == 200
    assert db.session.get(Supporter, supporter.id).erased_at is not None
    # The unsubscribe page now shows nothing of theirs and offers no data link.
    page = client.get(f"/unsubscribe/{token}/preferences").get_data(as_text=True)
    assert "Email me a link" not in page and "n•••@example.org" not in page
