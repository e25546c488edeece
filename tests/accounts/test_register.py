"""Registration: what is stored, what is mailed, and what a stranger can learn."""

from __future__ import annotations

import logging

from sqlalchemy import select

from campaign.accounts.models import User
from campaign.core.audit import AuditEvent
from campaign.core.outbox import MailCategory, OutboxMessage, mail_file_dir
from campaign.core.passwords import verify_password
from campaign.extensions import db
from tests.accounts.helpers import (
    OTHER_SECRET,
    SECRET,
    audit_events,
    flashes,
    is_logged_in,
    link_path,
    location_path,
    only_mail,
    outbox_count,
    register,
    users_with_email,
)
from tests.conftest import links_in, login, mail_to, path_of, post
from tests.factories import PASSWORD

TYPED_NAME = "Zebedee Quillfeather"


def test_register_creates_an_unconfirmed_user_with_an_argon2id_hash(client):
    response = register(client, "ana@example.org", SECRET, name="Ana")

    assert response.status_code == 302
    assert location_path(response) == "/check-email"
    [user] = users_with_email("ana@example.org")
    assert user.email_confirmed_at is None
    assert not user.email_confirmed
    assert user.display_name == "Ana"
    assert user.password_hash.startswith("$argon2id$")
    assert verify_password(user.password_hash, SECRET)
    assert not verify_password(user.password_hash, OTHER_SECRET)
    assert [e.subject_user_id for e in audit_events("account.registered")] == [user.id]


def test_the_clear_password_is_stored_nowhere(client, app, caplog):
    caplog.set_level(logging.DEBUG)

    register(client, "ana@example.org", SECRET, name="Ana")

    [user] = users_with_email("ana@example.org")
    row = db.session.execute(select(User.__table__).where(User.id == user.id)).mappings().one()
    for column, value in row.items():
        assert SECRET not in str(value), column
    messages = list(db.session.scalars(select(OutboxMessage)))
    assert messages, "registration queues a confirmation"
    for message in messages:
        for part in (message.subject, message.text_body, message.html_body or ""):
            assert SECRET not in part
    for event in db.session.scalars(select(AuditEvent)):
        assert SECRET not in repr(event.details)
    assert SECRET not in caplog.text
    for record in caplog.records:
        assert SECRET not in repr(record.args)
    for delivered in mail_file_dir().glob("*.eml"):
        assert SECRET.encode() not in delivered.read_bytes()


def test_a_refused_form_does_not_echo_the_password(client):
    response = register(client, "ana@example.org", SECRET, password_again=OTHER_SECRET)

    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "The two passwords are not the same." in page
    assert SECRET not in page
    assert OTHER_SECRET not in page
    assert users_with_email("ana@example.org") == []
    assert mail_to("ana@example.org") == []


def test_a_short_password_is_refused(client):
    response = register(client, "ana@example.org", "short1")

    assert response.status_code == 422
    assert "Use between 10 and 200 characters." in response.get_data(as_text=True)
    assert users_with_email("ana@example.org") == []


def test_registration_mails_a_confirmation_link_without_the_typed_name(client):
    register(client, "ana@example.org", SECRET, name=TYPED_NAME)

    message = only_mail("ana@example.org", "confirm_email")
    assert message.category == MailCategory.STRANGER
    assert len(mail_to("ana@example.org")) == 1
    path = link_path(message, "/confirm/")
    assert len(path) > len("/confirm/") + 20
    for part in (message.subject, message.text_body, message.html_body or ""):
        assert TYPED_NAME not in part
        assert "Zebedee" not in part
        assert "Quillfeather" not in part


def test_email_is_normalised_to_lower_case(client):
    response = register(client, "  Ana@Example.ORG ", SECRET)

    assert response.status_code == 302
    user = db.session.scalar(select(User).where(User.email == "ana@example.org"))
    assert user is not None
    assert db.session.scalar(select(User).where(User.email == "Ana@Example.ORG")) is None
    assert [m.template for m in mail_to("ana@example.org")] == ["confirm_email"]


def test_registering_an_existing_address_makes_no_second_account(app, make):
    existing = make.user("ana@example.org", name="Original Name")
    original_hash = existing.password_hash
    fresh_client, stranger_client = app.test_client(), app.test_client()

    fresh = register(fresh_client, "new@example.org", SECRET, name=TYPED_NAME)
    repeat = register(stranger_client, "ANA@example.ORG", OTHER_SECRET, name=TYPED_NAME)

    # The same answer either way...
    assert repeat.status_code == fresh.status_code == 302
    assert repeat.headers["Location"] == fresh.headers["Location"]
    assert flashes(stranger_client) == flashes(fresh_client)
    assert flashes(fresh_client), "both are told to check their email"
    # ...but no second account, and the first is untouched.
    assert [u.id for u in users_with_email("ana@example.org")] == [existing.id]
    db.session.refresh(existing)
    assert existing.password_hash == original_hash
    assert existing.display_name == "Original Name"
    assert verify_password(existing.password_hash, PASSWORD)
    assert not verify_password(existing.password_hash, OTHER_SECRET)
    # The owner of the address is told instead, with nothing the stranger typed.
    message = only_mail("ana@example.org", "account_exists")
    assert [m.template for m in mail_to("ana@example.org")] == ["account_exists"]
    assert message.category == MailCategory.STRANGER
    assert [path_of(url) for url in links_in(message)] == ["/forgot-password"]
    for part in (message.subject, message.text_body, message.html_body or ""):
        assert TYPED_NAME not in part
        assert OTHER_SECRET not in part
        assert "/confirm/" not in part


def test_registering_an_existing_address_is_indistinguishable_afterwards(app, make):
    """The next page must not reveal whether the address already had an account.

    A fresh registration that logs the new account in, while a repeated one does not,
    tells a stranger which addresses have accounts (the page header says "Log out" in one
    case and "Log in" in the other; the session cookie, which is signed but readable,
    holds a user id in one case only).
    """
    make.user("ana@example.org")
    fresh_client, stranger_client = app.test_client(), app.test_client()

    register(fresh_client, "new@example.org", SECRET)
    register(stranger_client, "ana@example.org", SECRET)

    assert is_logged_in(stranger_client) is False, "never into someone else's account"
    assert is_logged_in(fresh_client) == is_logged_in(stranger_client)


def test_strangers_cannot_make_the_site_mail_one_address_without_limit(app, make):
    make.user("ana@example.org")
    client = app.test_client()
    limit = app.config["MAIL_STRANGER_DAILY_LIMIT"]

    for _ in range(limit + 3):
        response = register(client, "ana@example.org", SECRET)
        assert response.status_code == 302

    assert len(mail_to("ana@example.org")) == limit


def test_a_logged_in_user_is_sent_away_from_the_register_page(client, make):
    user = make.user()
    login(client, user)
    before = outbox_count()

    response = register(client, "someone-else@example.org", SECRET)

    assert response.status_code == 302
    assert users_with_email("someone-else@example.org") == []
    assert outbox_count() == before


def test_registration_from_an_invitation_leads_back_to_it(client):
    response = post(
        client,
        "/register?next=/invitations/abc",
        {"email": "invitee@example.org", "password": "a long new password",
         "password_again": "a long new password"},
    )  # fmt: skip
    assert response.status_code == 302
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "/login?next=/invitations/abc" in page


def test_registration_ignores_an_offsite_next(client):
    response = post(
        client,
        "/register?next=//evil.example/",
        {"email": "invitee2@example.org", "password": "a long new password",
         "password_again": "a long new password"},
    )  # fmt: skip
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "evil.example" not in page
