"""The settings page: changing the password and the email address."""

from __future__ import annotations

from campaign.core.outbox import MailCategory
from campaign.core.passwords import verify_password
from campaign.extensions import db
from tests.accounts.helpers import (
    OTHER_SECRET,
    SECRET,
    attempt_login,
    audit_events,
    flashes,
    is_logged_in,
    link_path,
    live_sessions,
    location_path,
    only_mail,
    register,
    session_row,
    users_with_email,
)
from tests.conftest import login, mail_to, post
from tests.factories import PASSWORD


def _change_password(client, current: str, new: str = SECRET, again: str | None = None):
    return post(
        client,
        "/account/password",
        {
            "pw-current_password": current,
            "pw-new_password": new,
            "pw-new_password_again": new if again is None else again,
        },
    )


def _change_email(client, new_email: str, password: str = PASSWORD):
    return post(client, "/account/email", {"em-new_email": new_email, "em-password": password})


# --- password ----------------------------------------------------------------------------


def test_the_settings_page_shows_the_account(client, make):
    user = make.user("ana@example.org")
    login(client, user)

    page = client.get("/account").get_data(as_text=True)

    assert "Logged in as ana@example.org." in page
    assert "Your address is confirmed." in page


def test_a_wrong_current_password_changes_nothing(client, make):
    user = make.user("ana@example.org")
    login(client, user)
    old_hash = user.password_hash

    response = _change_password(client, OTHER_SECRET)

    assert response.status_code == 422
    assert "Your current password was not right." in response.get_data(as_text=True)
    db.session.refresh(user)
    assert user.password_hash == old_hash
    assert mail_to("ana@example.org") == []
    assert audit_events("account.password_changed") == []


def test_mismatched_new_passwords_change_nothing(client, make):
    user = make.user("ana@example.org")
    login(client, user)
    old_hash = user.password_hash

    response = _change_password(client, PASSWORD, SECRET, again=OTHER_SECRET)

    assert response.status_code == 422
    assert "The two passwords are not the same." in response.get_data(as_text=True)
    db.session.refresh(user)
    assert user.password_hash == old_hash


def test_changing_the_password(app, client, make):
    user = make.user("ana@example.org")
    other_device = app.test_client()
    login(client, user)
    login(other_device, user)
    this_row = session_row(client)

    response = _change_password(client, PASSWORD, SECRET)

    assert response.status_code == 302
    assert location_path(response) == "/account"
    db.session.refresh(user)
    assert verify_password(user.password_hash, SECRET)
    assert [row.id for row in live_sessions(user)] == [this_row.id]
    # This device stays logged in; every other one is logged out.
    assert is_logged_in(client)
    assert not is_logged_in(other_device)
    message = only_mail("ana@example.org", "password_changed")
    assert message.category == MailCategory.TRANSACTIONAL
    assert SECRET not in message.text_body
    assert SECRET not in (message.html_body or "")
    assert [e.actor_id for e in audit_events("account.password_changed")] == [user.id]
    assert attempt_login(app.test_client(), "ana@example.org", PASSWORD).status_code == 422
    assert attempt_login(app.test_client(), "ana@example.org", SECRET).status_code == 302


# --- email address -----------------------------------------------------------------------


def test_changing_the_email_needs_the_password(client, make):
    user = make.user("ana@example.org")
    login(client, user)

    response = _change_email(client, "ana@example.net", password=OTHER_SECRET)

    assert response.status_code == 422
    assert "Your password was not right." in response.get_data(as_text=True)
    assert mail_to("ana@example.net") == []
    db.session.refresh(user)
    assert user.email == "ana@example.org"


def test_the_same_or_an_invalid_address_is_refused(client, make):
    user = make.user("ana@example.org")
    login(client, user)

    same = _change_email(client, "ANA@example.org")
    invalid = _change_email(client, "not an address")

    assert same.status_code == invalid.status_code == 422
    assert "That is already your email address." in same.get_data(as_text=True)
    assert "Enter an email address like name@example.org." in invalid.get_data(as_text=True)
    assert mail_to("ana@example.org") == []


def _request_change(client, user, new_email="ana@example.net") -> str:
    response = _change_email(client, new_email)
    assert response.status_code == 302
    return link_path(only_mail(new_email, "change_email"), "/account/email/confirm/")


def test_a_change_mails_a_link_to_the_new_address_only(client, make):
    user = make.user("ana@example.org")
    login(client, user)

    response = _change_email(client, "Ana@Example.NET")

    assert response.status_code == 302
    assert location_path(response) == "/account"
    message = only_mail("ana@example.net", "change_email")
    assert message.category == MailCategory.STRANGER
    link_path(message, "/account/email/confirm/")
    assert mail_to("ana@example.org") == []
    db.session.refresh(user)
    assert user.email == "ana@example.org"


def test_opening_the_change_link_changes_nothing(client, make):
    user = make.user("ana@example.org")
    login(client, user)
    path = _request_change(client, user)

    for _ in range(2):
        response = client.get(path)
        assert response.status_code == 200
        page = response.get_data(as_text=True)
        assert "ana@example.net" in page
        assert '<form method="post">' in page

    db.session.refresh(user)
    assert user.email == "ana@example.org"
    assert [m.template for m in mail_to("ana@example.org")] == []


def test_pressing_the_button_changes_the_address_and_tells_the_old_one(app, client, make):
    user = make.user("ana@example.org")
    login(client, user)
    path = _request_change(client, user, "Ana@Example.NET")

    response = post(app.test_client(), path)  # opened on another device, logged out

    assert response.status_code == 302
    db.session.refresh(user)
    assert user.email == "ana@example.net"
    assert user.email_confirmed_at is not None
    notice = only_mail("ana@example.org", "email_changed_notice")
    assert "example.net" in notice.text_body
    assert [e.subject_user_id for e in audit_events("account.email_changed")] == [user.id]
    # The new address logs in; the old one no longer does.
    assert attempt_login(app.test_client(), "ana@example.net", PASSWORD).status_code == 302
    assert attempt_login(app.test_client(), "ana@example.org", PASSWORD).status_code == 422
    assert is_logged_in(client), "changing the address does not log anyone out"


def test_the_change_link_works_once(app, client, make):
    user = make.user("ana@example.org")
    login(client, user)
    path = _request_change(client, user)
    assert post(app.test_client(), path).status_code == 302

    opened = app.test_client().get(path)
    again = post(app.test_client(), path)

    for response in (opened, again):
        assert response.status_code == 400
        assert "This link has already been used." in response.get_data(as_text=True)
    assert len(mail_to("ana@example.org")) == 1  # one notice, not two


def test_an_older_change_link_dies_when_a_newer_one_is_used(app, client, make):
    user = make.user("ana@example.org")
    login(client, user)
    first = _request_change(client, user, "first@example.net")
    second = _request_change(client, user, "second@example.net")

    assert post(app.test_client(), second).status_code == 302
    response = post(app.test_client(), first)

    assert response.status_code == 400
    db.session.refresh(user)
    assert user.email == "second@example.net"


def test_the_change_link_expires(app, client, make, link_clock):
    user = make.user("ana@example.org")
    login(client, user)
    path = _request_change(client, user)

    link_clock(app.config["EMAIL_CONFIRM_MAX_AGE"] + 1)
    fresh = app.test_client()

    response = post(fresh, path)
    assert response.status_code == 400
    assert "This link has expired." in response.get_data(as_text=True)
    db.session.refresh(user)
    assert user.email == "ana@example.org"


def test_an_address_with_an_account_is_not_revealed(app, make):
    user = make.user("ana@example.org")
    make.user("taken@example.org")
    asking, control = app.test_client(), app.test_client()
    login(asking, user)
    login(control, make.user("bo@example.org"))

    taken = _change_email(asking, "taken@example.org")
    free = _change_email(control, "free@example.org")

    assert taken.status_code == free.status_code == 302
    assert taken.headers["Location"] == free.headers["Location"]
    assert flashes(asking) == flashes(control)
    assert flashes(asking)
    assert [m.template for m in mail_to("taken@example.org")] == ["account_exists"]
    db.session.refresh(user)
    assert user.email == "ana@example.org"


def test_an_address_taken_after_the_request_is_not_stolen(app, client, make):
    user = make.user("ana@example.org")
    login(client, user)
    path = _request_change(client, user, "wanted@example.net")
    register(app.test_client(), "wanted@example.net", SECRET)

    response = post(app.test_client(), path)

    assert response.status_code == 302
    db.session.refresh(user)
    assert user.email == "ana@example.org"
    assert mail_to("ana@example.org") == []
    assert len(users_with_email("wanted@example.net")) == 1
