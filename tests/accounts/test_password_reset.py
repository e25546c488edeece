"""Password reset: silent about unknown addresses, one use, one hour, logs out everywhere."""

from __future__ import annotations

from datetime import timedelta

from campaign.core.models import utcnow
from campaign.core.outbox import MailCategory
from campaign.core.passwords import verify_password
from campaign.extensions import db
from tests.accounts.helpers import (
    LOGIN_FAILED,
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
    outbox_count,
)
from tests.conftest import login, mail_to, post
from tests.factories import PASSWORD


def _ask(client, email: str):
    return post(client, "/forgot-password", {"email": email})


def _reset_path(client, user) -> str:
    assert _ask(client, user.email).status_code == 302
    return link_path(mail_to(user.email)[-1], "/reset-password/")


def _choose(client, path: str, password: str = SECRET, again: str | None = None):
    return post(
        client, path, {"password": password, "password_again": password if again is None else again}
    )


def test_an_unknown_address_gets_the_same_answer_and_no_mail(app, make):
    make.user("ana@example.org")
    known_client, unknown_client = app.test_client(), app.test_client()
    before = outbox_count()

    unknown = _ask(unknown_client, "nobody@example.org")
    assert outbox_count() == before
    known = _ask(known_client, "ana@example.org")

    assert unknown.status_code == known.status_code == 302
    assert unknown.headers["Location"] == known.headers["Location"]
    assert location_path(known) == "/login"
    assert flashes(unknown_client) == flashes(known_client)
    assert flashes(known_client)
    assert mail_to("nobody@example.org") == []
    assert outbox_count() == before + 1


def test_a_known_address_gets_a_reset_link(client, make):
    user = make.user("ana@example.org", name="Ana")

    _ask(client, "ANA@Example.org")

    message = only_mail("ana@example.org", "reset_password")
    assert message.category == MailCategory.STRANGER
    assert link_path(message, "/reset-password/")
    assert "60 minutes" in message.text_body
    assert [e.subject_user_id for e in audit_events("account.reset_requested")] == [user.id]


def test_opening_the_link_shows_the_form_and_changes_nothing(app, client, make):
    user = make.user("ana@example.org")
    path = _reset_path(client, user)
    old_hash = user.password_hash
    elsewhere = app.test_client()
    login(elsewhere, user)

    response = client.get(path)

    assert response.status_code == 200
    assert 'name="password_again"' in response.get_data(as_text=True)
    db.session.refresh(user)
    assert user.password_hash == old_hash
    assert len(live_sessions(user)) == 1
    assert is_logged_in(elsewhere)


def test_the_link_sets_the_new_password(app, client, make):
    user = make.user("ana@example.org")
    path = _reset_path(client, user)
    elsewhere = app.test_client()
    login(elsewhere, user)

    response = _choose(client, path, SECRET)

    assert response.status_code == 302
    assert location_path(response) == "/login"
    db.session.refresh(user)
    assert verify_password(user.password_hash, SECRET)
    assert live_sessions(user) == []
    assert not is_logged_in(elsewhere)
    assert [e.subject_user_id for e in audit_events("account.password_reset")] == [user.id]
    old = attempt_login(app.test_client(), "ana@example.org", PASSWORD)
    assert old.status_code == 422
    assert LOGIN_FAILED in old.get_data(as_text=True)
    assert attempt_login(app.test_client(), "ana@example.org", SECRET).status_code == 302


def test_mismatched_passwords_change_nothing(client, make):
    user = make.user("ana@example.org")
    path = _reset_path(client, user)
    old_hash = user.password_hash

    response = _choose(client, path, SECRET, again=OTHER_SECRET)

    assert response.status_code == 422
    assert "The two passwords are not the same." in response.get_data(as_text=True)
    db.session.refresh(user)
    assert user.password_hash == old_hash
    # The link was not spent by the failed attempt.
    assert _choose(client, path, SECRET).status_code == 302


def test_a_reset_logs_out_every_session(app, make):
    user = make.user("ana@example.org")
    laptop = app.test_client()
    login(laptop, user)
    attempt_login(phone := app.test_client(), "ana@example.org", PASSWORD, remember="y")
    path = _reset_path(app.test_client(), user)

    _choose(app.test_client(), path, SECRET)

    assert not is_logged_in(laptop)
    phone.delete_cookie("session")  # only the remember-me cookie is left
    assert not is_logged_in(phone)


def test_the_link_works_once(app, client, make):
    user = make.user("ana@example.org")
    path = _reset_path(client, user)
    assert _choose(client, path, SECRET).status_code == 302

    opened = app.test_client().get(path)
    reused = _choose(app.test_client(), path, OTHER_SECRET)

    for response in (opened, reused):
        assert response.status_code == 400
        assert "This link has already been used." in response.get_data(as_text=True)
    db.session.refresh(user)
    assert verify_password(user.password_hash, SECRET)
    assert not verify_password(user.password_hash, OTHER_SECRET)


def test_an_older_link_dies_when_a_newer_one_is_used(app, make):
    user = make.user("ana@example.org")
    first = _reset_path(app.test_client(), user)
    second = _reset_path(app.test_client(), user)

    assert _choose(app.test_client(), second, SECRET).status_code == 302
    response = _choose(app.test_client(), first, OTHER_SECRET)

    assert response.status_code == 400
    db.session.refresh(user)
    assert verify_password(user.password_hash, SECRET)


def test_the_link_expires_after_an_hour(app, client, make, link_clock):
    user = make.user("ana@example.org")
    path = _reset_path(client, user)
    old_hash = user.password_hash
    max_age = app.config["PASSWORD_RESET_MAX_AGE"]
    assert max_age == 3600

    link_clock(max_age - 60)
    assert app.test_client().get(path).status_code == 200

    link_clock(61)
    fresh = app.test_client()
    opened = fresh.get(path)
    used = _choose(fresh, path, SECRET)

    for response in (opened, used):
        assert response.status_code == 400
        assert "This link has expired." in response.get_data(as_text=True)
    db.session.refresh(user)
    assert user.password_hash == old_hash


def test_a_reset_unlocks_and_confirms_the_account(app, client, make):
    user = make.user("ana@example.org", confirmed=False)
    user.locked_until = utcnow() + timedelta(minutes=15)
    db.session.commit()
    path = _reset_path(client, user)

    _choose(client, path, SECRET)

    db.session.refresh(user)
    assert user.locked_until is None
    assert user.email_confirmed_at is not None
    assert attempt_login(app.test_client(), "ana@example.org", SECRET).status_code == 302


def test_reset_mail_to_one_address_is_capped_per_day(app, client, make):
    make.user("ana@example.org")
    limit = app.config["MAIL_STRANGER_DAILY_LIMIT"]

    for _ in range(limit + 2):
        assert _ask(client, "ana@example.org").status_code == 302

    assert len(mail_to("ana@example.org")) == limit
