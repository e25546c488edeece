"""Action rules at the service level: places, waitlist, cancellation, reminders."""

from __future__ import annotations

from datetime import timedelta

import pytest
from icalendar import Calendar

from campaign.actions import services
from campaign.actions.models import Action, ActionStatus, SignupStatus
from campaign.core.models import utcnow
from campaign.extensions import db
from tests.conftest import mail_to


@pytest.fixture
def action(make, session):
    group = make.group("Riverside Health Justice")
    row = Action(group_id=group.id, title="Visit the Trust board", capacity=2,
                 starts_at=utcnow() + timedelta(days=3),
                 ends_at=utcnow() + timedelta(days=3, hours=2),
                 status=ActionStatus.PUBLISHED, place_name="Board room",
                 place_public=False, reminder_hours=24)  # fmt: skip
    db.session.add(row)
    db.session.flush()
    return row


def _sign(action, n: int, **kwargs):
    return services.sign_up(action, email=f"p{n}@example.org", name=f"Person {n}", **kwargs)


def test_places_then_waitlist_then_promotion(action):
    assert [_sign(action, n).outcome for n in range(4)] == [
        "confirmed", "confirmed", "waitlisted", "waitlisted"
    ]  # fmt: skip
    first = _sign(action, 0).signup
    promoted = services.cancel_signup(first)
    assert promoted.email == "p2@example.org" and promoted.status == SignupStatus.CONFIRMED
    assert [m.template for m in mail_to("p2@example.org")] == [
        "action_signup", "action_place_offered"
    ]  # fmt: skip
    assert services.places_left(action) == 0
    # Cancelling a waitlisted sign-up frees nothing and promotes nobody.
    assert services.cancel_signup(_sign(action, 3).signup) is None


def test_a_second_sign_up_updates_and_never_duplicates(action):
    _sign(action, 1, phone="")
    again = services.sign_up(action, email="P1@Example.org", name="Person One", phone="0770")
    assert again.outcome == "updated" and again.signup.phone == "0770"
    assert services.counts(action)["confirmed"] == 1


def test_the_confirmation_carries_a_calendar_but_not_the_typed_name(action):
    _sign(action, 1)
    [message] = mail_to("p1@example.org")
    assert "Person 1" not in message.text_body and "Person 1" not in message.html_body
    event = Calendar.from_ical(message.calendar).walk("VEVENT")[0]
    assert event.decoded("dtstart") == action.starts_at.replace(microsecond=0) or (
        event.decoded("dtstart") == action.starts_at
    )
    assert "Board room" in str(event.get("location"))  # a confirmed place sees the place


def test_the_waitlist_does_not_see_a_private_place(action):
    for n in range(3):
        _sign(action, n)
    [message] = mail_to("p2@example.org")
    assert "Board room" not in message.text_body
    assert Calendar.from_ical(message.calendar).walk("VEVENT")[0].get("location") is None


def test_sign_ups_close_when_the_action_starts_or_is_not_published(action):
    action.status = ActionStatus.DRAFT
    with pytest.raises(services.ActionError):
        _sign(action, 1)
    action.status = ActionStatus.PUBLISHED
    action.starts_at = utcnow() - timedelta(minutes=1)
    with pytest.raises(services.ActionError):
        _sign(action, 1)


def test_cancelling_the_action_emails_everyone(make, action):
    for n in range(3):
        _sign(action, n)
    services.cancel_signup(_sign(action, 0).signup)  # p0 cancels, p2 promoted
    told = services.cancel_action(make.user(), action)
    assert told == 2
    for n in (1, 2):
        assert mail_to(f"p{n}@example.org")[-1].template == "action_cancelled"
    assert mail_to("p0@example.org")[-1].template == "action_signup_cancelled"


def test_reminders_go_once_and_only_when_due(action):
    for n in range(3):
        _sign(action, n)
    assert services.send_due_reminders() == 0  # three days ahead: not yet
    at = action.starts_at - timedelta(hours=23)
    assert services.send_due_reminders(now=at) == 2  # the two confirmed, not the waitlist
    assert services.send_due_reminders(now=at + timedelta(minutes=5)) == 0
    reminders = [m for n in range(3) for m in mail_to(f"p{n}@example.org")
                 if m.template == "action_reminder"]  # fmt: skip
    assert sorted(m.to_addr for m in reminders) == ["p0@example.org", "p1@example.org"]


def test_changing_details_mails_a_fresh_link_and_retires_the_old(app, action):
    signup = _sign(action, 1).signup
    old_version = signup.version
    services.change_details(signup, name="P", phone="0770", access_needs="Step-free")
    assert signup.version == old_version + 1
    latest = mail_to("p1@example.org")[-1]
    assert latest.template == "action_signup" and "/signup/" in latest.text_body
    with app.test_request_context():
        token = latest.text_body.split("/signup/")[1].split()[0]
        assert services.signup_from_token(token).id == signup.id
