"""A supporter's own requests, proven by the link in their email: their data, erasure."""

from __future__ import annotations

import json

from sqlalchemy import select

from campaign.core.audit import AuditEvent
from campaign.extensions import db
from campaign.people import services
from campaign.people.models import Supporter, UpdatesStatus
from tests.conftest import csrf_token


def _supporter(make):
    group = make.group("Riverside Health Justice")
    supporter, _ = services.upsert_supporter(group, "nadia@example.org", first_name="Nadia")
    supporter.updates_status = UpdatesStatus.SUBSCRIBED
    db.session.commit()
    return group, supporter, services.unsubscribe_token(supporter)


def test_a_supporter_downloads_their_own_data(client, make):
    group, supporter, token = _supporter(make)
    page = client.get(f"/unsubscribe/{token}/preferences").get_data(as_text=True)
    assert "Download my data" in page
    assert client.get(f"/unsubscribe/{token}/my-data").status_code == 405  # never on GET
    response = client.post(f"/unsubscribe/{token}/my-data", data={"csrf_token": csrf_token(client)})
    assert response.status_code == 200
    assert "attachment" in response.headers["Content-Disposition"]
    data = json.loads(response.get_data(as_text=True))
    assert data["email"] == "nadia@example.org" and data["first_name"] == "Nadia"
    assert db.session.scalar(
        select(AuditEvent).where(AuditEvent.event == "supporter.data_exported")
    )


def test_a_supporter_erases_themself_with_one_button(client, make):
    group, supporter, token = _supporter(make)
    page = client.get(f"/unsubscribe/{token}/erase")
    assert page.status_code == 200 and "cannot be undone" in page.get_data(as_text=True)
    assert db.session.get(Supporter, supporter.id).erased_at is None  # GET changes nothing
    response = client.post(f"/unsubscribe/{token}/erase", data={"csrf_token": csrf_token(client)})
    assert response.status_code == 200 and "erased" in response.get_data(as_text=True)
    db.session.refresh(supporter)
    assert supporter.erased_at is not None and supporter.first_name == ""
    assert "nadia" not in supporter.email
    assert services.is_suppressed(group.id, "nadia@example.org")
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.event == "supporter.erased"))
    assert event.actor_id is None and event.details["by"].startswith("the person")
    # The link now only says it is done, and shows nothing of theirs.
    again = client.post(f"/unsubscribe/{token}/my-data", data={"csrf_token": csrf_token(client)})
    assert again.status_code == 400


def test_erasure_without_the_csrf_token_is_refused(client, make):
    group, supporter, token = _supporter(make)
    response = client.post(f"/unsubscribe/{token}/erase", data={})
    assert response.status_code == 400
    assert db.session.get(Supporter, supporter.id).erased_at is None
