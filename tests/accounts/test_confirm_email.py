"""Email confirmation: a GET never confirms, a POST does, once, within the max age."""

from __future__ import annotations

import json

from itsdangerous import URLSafeTimedSerializer
from itsdangerous.encoding import base64_decode, base64_encode

from campaign.core.tokens import make_token
from campaign.extensions import db
from tests.accounts.helpers import (
    SECRET,
    audit_events,
    link_path,
    location_path,
    only_mail,
    register,
    token_of,
    users_with_email,
)
from tests.conftest import login, post


def _registered(client, email="ana@example.org"):
    register(client, email, SECRET)
    [user] = users_with_email(email)
    return user, link_path(only_mail(email, "confirm_email"), "/confirm/")


def _unconfirmed(user) -> bool:
    db.session.refresh(user)
    return user.email_confirmed_at is None


def test_opening_the_link_shows_a_button_and_confirms_nothing(client):
    user, path = _registered(client)

    for _ in range(3):  # a mail scanner may open it several times
        response = client.get(path)
        assert response.status_code == 200
        page = response.get_data(as_text=True)
        assert '<form method="post">' in page
        assert "Confirm my address" in page
        assert "ana@example.org" in page
    assert client.head(path).status_code == 200

    assert _unconfirmed(user)
    assert audit_events("account.email_confirmed") == []


def test_pressing_the_button_confirms_the_address(app, client):
    user, path = _registered(client)
    other_device = app.test_client()  # the mail may be opened anywhere

    response = post(other_device, path)

    assert response.status_code == 302
    assert location_path(response) == "/login"
    assert not _unconfirmed(user)
    assert [e.subject_user_id for e in audit_events("account.email_confirmed")] == [user.id]


def test_a_logged_in_user_is_sent_home_after_confirming(client):
    user, path = _registered(client)
    login(client, user, SECRET)

    response = post(client, path)

    assert response.status_code == 302
    assert location_path(response) == "/"
    assert not _unconfirmed(user)


def test_a_post_without_the_form_token_confirms_nothing(app, client):
    user, path = _registered(client)

    response = app.test_client().post(path, data={})

    assert response.status_code == 400
    assert _unconfirmed(user)


def test_the_link_works_only_once(app, client):
    user, path = _registered(client)
    assert post(client, path).status_code == 302
    confirmed_at = user.email_confirmed_at

    again = post(app.test_client(), path)
    opened = client.get(path)

    for response in (again, opened):
        assert response.status_code == 400
        assert "This link has already been used." in response.get_data(as_text=True)
    db.session.refresh(user)
    assert user.email_confirmed_at == confirmed_at
    assert len(audit_events("account.email_confirmed")) == 1


def test_the_link_expires_after_the_configured_age(app, client, link_clock):
    user, path = _registered(client)
    max_age = app.config["EMAIL_CONFIRM_MAX_AGE"]

    link_clock(max_age - 60)
    assert app.test_client().get(path).status_code == 200

    link_clock(61)
    fresh = app.test_client()
    opened = fresh.get(path)
    pressed = post(fresh, path)

    for response in (opened, pressed):
        assert response.status_code == 400
        assert "This link has expired." in response.get_data(as_text=True)
    assert _unconfirmed(user)


def test_a_link_edited_to_point_at_another_account_is_refused(app, client, make):
    victim = make.user("victim@example.org", confirmed=False)
    user, path = _registered(client)
    token = token_of(path)
    payload, timestamp, signature = token.split(".")
    data = json.loads(base64_decode(payload))
    assert data["u"] == user.id
    data["u"] = victim.id
    forged = base64_encode(json.dumps(data, separators=(",", ":"))).decode()
    forged_path = f"/confirm/{forged}.{timestamp}.{signature}"

    for response in (client.get(forged_path), post(app.test_client(), forged_path)):
        assert response.status_code == 400
        assert "This link is not valid." in response.get_data(as_text=True)
    assert _unconfirmed(victim)
    assert _unconfirmed(user)


def test_a_link_signed_with_another_key_or_for_another_purpose_is_refused(app, client):
    user, path = _registered(client)
    data = {"u": user.id, "f": "whatever"}
    wrong_key = URLSafeTimedSerializer("not-the-secret", salt="campaign.confirm").dumps(data)
    with app.test_request_context():
        wrong_purpose = make_token("reset", data)

    for token in (wrong_key, wrong_purpose, "nonsense", "a.b.c"):
        response = post(app.test_client(), f"/confirm/{token}")
        assert response.status_code == 400
        assert "This link is not valid." in response.get_data(as_text=True)
    # And a confirmation token is no good as a password-reset token.
    response = client.get(f"/reset-password/{token_of(path)}")
    assert response.status_code == 400
    assert "This link is not valid." in response.get_data(as_text=True)
    assert _unconfirmed(user)
