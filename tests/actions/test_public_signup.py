"""The public sign-up flow: the form, the emailed link, the waitlist and the calendar file."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from icalendar import Calendar
from sqlalchemy import select

from campaign.actions.models import Action, ActionSignup, ActionStatus, SignupStatus
from campaign.core.models import utcnow
from campaign.extensions import db
from tests.conftest import links_in, mail_to, path_of, post

SCRIPT = "<script>alert('x')</script>"


def _action(group, **kwargs) -> Action:
    starts = kwargs.pop("starts_at", utcnow() + timedelta(days=3))
    values = {"title": "Visit the Trust board", "status": ActionStatus.PUBLISHED,
              "ends_at": starts + timedelta(hours=2), "place_name": "Board room",
              "address": "1 Hospital Road", "place_public": True, "capacity": 50,
              "area": "Riverside"} | kwargs  # fmt: skip
    row = Action(group_id=group.id, starts_at=starts, **values)
    db.session.add(row)
    db.session.flush()
    return row


def _url(action: Action) -> str:
    return f"/g/{action.group.slug}/actions/{action.id}"


def _sign(client, action, email: str, name: str = "Ana Silva", **extra):
    return post(client, _url(action), {"name": name, "email": email} | extra)


def _signups(action) -> list[ActionSignup]:
    return list(
        db.session.scalars(
            select(ActionSignup)
            .where(ActionSignup.action_id == action.id)
            .order_by(ActionSignup.id)
        )
    )


def _manage_link(message) -> str:
    return path_of(next(url for url in links_in(message) if "/signup/" in url))


@pytest.fixture
def group(make):
    return make.group("Riverside Health Justice")


def test_sign_up_update_waitlist_cancel_and_promotion(client, group):
    action = _action(group, capacity=2)
    response = _sign(client, action, "ana@example.org", phone="0770 900 123")
    assert response.status_code == 302
    page = client.get(response.headers["Location"])
    assert "check your email" in page.get_data(as_text=True)
    assert mail_to("ana@example.org")[-1].subject.startswith("You are signed up")

    # The same address again finds the one sign-up and only fills its empty details.
    again = _sign(client, action, "ANA@example.org", name="Ana S", access_needs="Step-free")
    # The page is the same as for a first sign-up: it reveals nothing about the address.
    assert again.headers["Location"] == response.headers["Location"]
    [signup] = _signups(action)
    assert (signup.name, signup.access_needs, signup.phone) == (
        "Ana Silva",
        "Step-free",
        "0770 900 123",
    )

    _sign(client, action, "ben@example.org")
    third = _sign(client, action, "cai@example.org")
    assert third.headers["Location"] == response.headers["Location"]
    assert mail_to("cai@example.org")[-1].subject.startswith("You are on the waitlist")
    statuses = [s.status for s in _signups(action)]
    assert statuses == ["confirmed", "confirmed", "waitlisted"]
    assert "Full: waitlist open" in client.get(_url(action)).get_data(as_text=True)
    first_waiting = "cai"

    # Ana cancels from the emailed link: the GET shows the page and changes nothing.
    link = _manage_link(mail_to("ana@example.org")[-1])
    shown = client.get(link)
    assert shown.status_code == 200
    assert "Cancel my place" in shown.get_data(as_text=True)
    assert [s.status for s in _signups(action)] == statuses
    done = post(client, link, {"cancel": "1"})
    assert done.status_code == 200
    assert "Your place is cancelled" in done.get_data(as_text=True)
    assert _signups(action)[0].status == "cancelled"
    assert [m.template for m in mail_to(f"{first_waiting}@example.org")] == [
        "action_signup", "action_place_offered"
    ]  # fmt: skip
    assert mail_to("ana@example.org")[-1].template == "action_signup_cancelled"
    # The cancel link cannot be used again.
    assert client.get(link).status_code == 400


def test_capacity_two_confirms_two_then_waitlists(client, group):
    action = _action(group, capacity=2)
    for n in range(3):
        _sign(client, action, f"p{n}@example.org")
    outcomes = [mail_to(f"p{n}@example.org")[-1].subject.split(":")[0] for n in range(3)]
    assert outcomes == ["You are signed up", "You are signed up", "You are on the waitlist"]


def test_an_action_without_a_capacity_takes_sign_ups(client, group):
    action = _action(group, capacity=None)
    assert _sign(client, action, "ana@example.org").status_code == 302


def test_changing_details_by_the_link_refuses_the_old_link(client, group):
    action = _action(group)
    _sign(client, action, "ana@example.org")
    link = _manage_link(mail_to("ana@example.org")[-1])
    page = client.get(link).get_data(as_text=True)
    assert "Ana Silva" in page  # the person's own details, behind their own link
    response = post(client, link, {"name": "Ana Maria", "phone": "0123", "access_needs": ""})
    assert response.status_code == 302
    new_link = response.headers["Location"]
    assert new_link != link and "/signup/" in new_link
    [signup] = _signups(action)
    assert (signup.name, signup.phone, signup.status) == ("Ana Maria", "0123", "confirmed")
    old = client.get(link)
    assert old.status_code == 400
    assert "already been used" in old.get_data(as_text=True)
    assert client.get(new_link).status_code == 200
    # Bad input in the change form: a clear 422, nothing changed.
    bad = post(client, new_link, {"name": SCRIPT})
    assert bad.status_code == 422 and SCRIPT not in bad.get_data(as_text=True)
    assert signup.name == "Ana Maria"


def test_bad_and_forged_links_are_a_400_page(client, group):
    for token in ("nonsense", "x" * 300):
        response = client.get(f"/signup/{token}")
        assert response.status_code == 400
        assert "not valid" in response.get_data(as_text=True)


def _dtstart(ics: str) -> datetime:
    event = Calendar.from_ical(ics).walk("VEVENT")[0]
    return event.decoded("dtstart")


def test_confirmation_mail_has_a_calendar_with_the_utc_start(client, group):
    starts = (utcnow() + timedelta(days=10)).replace(microsecond=0)
    action = _action(group, starts_at=starts)
    _sign(client, action, "ana@example.org", name="Ana Silva")
    [message] = mail_to("ana@example.org")
    assert message.template == "action_signup"
    assert "Ana Silva" not in message.text_body and "Ana Silva" not in message.html_body
    assert _dtstart(message.calendar) == starts


@pytest.mark.parametrize(
    ("local_start", "utc_start"),
    [
        # Last Sunday of October: clocks went back at 02:00 that morning (GMT = UTC).
        ("2026-10-25T10:00", "2026-10-25T10:00"),
        ("2027-10-31T10:00", "2027-10-31T10:00"),
        # Last Sunday of March: clocks went forward at 01:00 (BST = UTC+1).
        ("2026-03-29T10:00", "2026-03-29T09:00"),
        ("2027-03-28T10:00", "2027-03-28T09:00"),
    ],
)
def test_calendar_times_across_the_clock_changes(client, group, local_start, utc_start):
    from zoneinfo import ZoneInfo

    starts = datetime.fromisoformat(local_start).replace(tzinfo=ZoneInfo("Europe/London"))
    action = _action(group, starts_at=starts.astimezone(UTC))
    expected = datetime.fromisoformat(utc_start).replace(tzinfo=UTC)
    response = client.get(f"{_url(action)}/calendar.ics")
    assert response.status_code == 200
    assert response.mimetype == "text/calendar"
    assert "attachment" in response.headers["Content-Disposition"]
    ics = response.get_data(as_text=True)
    assert _dtstart(ics) == expected
    assert f"DTSTART:{expected:%Y%m%dT%H%M%S}Z" in ics
    assert "10:00" in client.get(_url(action)).get_data(as_text=True)  # shown in UK time
    if action.starts_at > utcnow():  # the confirmation mail's file says the same
        _sign(client, action, "dst@example.org")
        assert _dtstart(mail_to("dst@example.org")[-1].calendar) == expected


def test_a_private_place_is_shown_only_to_confirmed_people(client, group):
    action = _action(group, place_public=False, place_name="Room 12", address="Secret Street")
    page = client.get(_url(action)).get_data(as_text=True)
    assert "Secret Street" not in page and "Room 12" not in page
    assert "the place is sent to people with a confirmed place" in page.lower()
    ics = client.get(f"{_url(action)}/calendar.ics").get_data(as_text=True)
    assert "Secret Street" not in ics and "LOCATION" not in ics
    _sign(client, action, "ana@example.org")
    [message] = mail_to("ana@example.org")
    assert "Secret Street" in message.text_body
    assert "Secret Street" in Calendar.from_ical(message.calendar).walk("VEVENT")[0]["location"]


def test_honeypot_says_yes_and_does_nothing(client, group):
    action = _action(group)
    response = _sign(client, action, "bot@example.org", website="http://spam.example")
    assert response.status_code == 302 and "signed-up" in response.headers["Location"]
    assert _signups(action) == [] and mail_to("bot@example.org") == []


def test_updates_box_is_unticked_and_asks_for_double_opt_in(client, group):
    action = _action(group)
    page = client.get(_url(action)).get_data(as_text=True)
    assert "Send me email updates from Riverside Health Justice" in page
    assert "checked" not in page.split('name="wants_updates"')[1].split(">")[0]
    _sign(client, action, "ana@example.org", wants_updates="y")
    templates = [m.template for m in mail_to("ana@example.org")]
    assert "action_signup" in templates and len(templates) == 2  # plus the opt-in link
    _sign(client, action, "ben@example.org")
    assert [m.template for m in mail_to("ben@example.org")] == ["action_signup"]


def test_one_address_is_limited_across_the_platform(client, make, group):
    others = [_action(make.group()) for _ in range(6)]
    for other in others:
        db.session.add(ActionSignup(action_id=other.id, group_id=other.group_id,
                                    email="busy@example.org"))  # fmt: skip
    db.session.flush()
    action = _action(group)
    response = _sign(client, action, "Busy@Example.org")
    assert response.status_code == 429
    assert "many actions in the last hour" in response.get_data(as_text=True)
    assert _signups(action) == []
    # Sign-ups older than an hour do not count.
    for signup in db.session.scalars(select(ActionSignup)):
        signup.created_at = utcnow() - timedelta(hours=2)
    db.session.flush()
    assert _sign(client, action, "busy@example.org").status_code == 302


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "x" * 20_000}, "under 120 characters"),
        ({"name": SCRIPT}, "remove the &lt; and &gt; characters"),
        ({"name": ""}, "Enter your name"),
        ({"email": "not an email"}, "like name@example.org"),
        ({"email": f"{SCRIPT}@example.org"}, "like name@example.org"),
        ({"email": "x" * 20_000 + "@example.org"}, "at most 254 characters"),
        ({"phone": "1" * 41}, "under 40 characters"),
        ({"access_needs": "x" * 1001}, "under 1000 characters"),
        ({"wants_updates": "y" * 20_000}, None),  # a checkbox takes any value as ticked
    ],
)
def test_bad_input_is_a_clear_422(client, group, data, message):
    action = _action(group)
    response = post(client, _url(action), {"name": "Ana", "email": "ana@example.org"} | data)
    body = response.get_data(as_text=True)
    if message is None:
        assert response.status_code == 302
        return
    assert response.status_code == 422, response.status_code
    assert message in body and "error-summary" in body
    assert SCRIPT not in body
    assert _signups(action) == []


def test_closed_actions_refuse_sign_ups_clearly(client, group):
    cancelled = _action(group, status=ActionStatus.CANCELLED)
    page = client.get(_url(cancelled)).get_data(as_text=True)
    assert "This action has been cancelled" in page and 'name="email"' not in page
    response = _sign(client, cancelled, "ana@example.org")
    assert response.status_code == 409
    assert "not open for sign-ups" in response.get_data(as_text=True)
    started = _action(group, starts_at=utcnow() - timedelta(minutes=5))
    assert _sign(client, started, "ana@example.org").status_code == 409
    assert (
        db.session.scalar(select(ActionSignup).where(ActionSignup.status == SignupStatus.CONFIRMED))
        is None
    )
