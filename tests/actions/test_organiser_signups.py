"""Organisers' sign-up list, CSV, check-in, walk-ins, counts and the attendee email."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

from sqlalchemy import select

from campaign.actions import organising
from campaign.actions.models import ActionSignup, SignupStatus
from campaign.core.audit import AuditEvent
from campaign.core.models import utcnow
from campaign.core.outbox import OutboxMessage
from campaign.extensions import db
from campaign.people.models import Suppression, SuppressionReason
from tests.actions.test_organiser_pages import add_signup, make_action, organiser  # noqa: F401
from tests.conftest import mail_to, post


def test_list_search_and_filter(client, organiser):  # noqa: F811
    _, group = organiser
    action = make_action(group)
    add_signup(action, "ana@example.org", name="Ana Silva", phone="07700 900123",
               access_needs="Wheelchair user")  # fmt: skip
    add_signup(action, "bo@example.org", name="Bo 100%", status=SignupStatus.WAITLISTED)
    base = f"/g/{group.slug}/manage/actions/{action.id}/signups"
    body = client.get(base).get_data(as_text=True)
    assert "Ana Silva" in body and "Wheelchair user" in body and "07700 900123" in body
    assert "bo@example.org" in body
    body = client.get(base, query_string={"q": "silva"}).get_data(as_text=True)
    assert "Ana Silva" in body and "bo@example.org" not in body
    body = client.get(base, query_string={"q": "%"}).get_data(as_text=True)
    assert "Bo 100%" in body and "Ana Silva" not in body  # % is searched for, not a wildcard
    body = client.get(base, query_string={"status": "waitlisted"}).get_data(as_text=True)
    assert "bo@example.org" in body and "ana@example.org" not in body
    assert client.get(base, query_string={"q": "x" * 500}).status_code == 400


def test_organiser_cancels_a_signup_and_the_waitlist_moves(client, organiser):  # noqa: F811
    _, group = organiser
    action = make_action(group, capacity=1)
    placed = add_signup(action, "placed@example.org")
    waiting = add_signup(action, "waiting@example.org", SignupStatus.WAITLISTED)
    url = f"/g/{group.slug}/manage/actions/{action.id}/signups/{placed.id}/cancel"
    assert post(client, url).status_code == 302
    assert db.session.get(ActionSignup, placed.id).status == SignupStatus.CANCELLED
    assert db.session.get(ActionSignup, waiting.id).status == SignupStatus.CONFIRMED
    assert [m.template for m in mail_to("placed@example.org")] == ["action_signup_cancelled"]
    assert [m.template for m in mail_to("waiting@example.org")] == ["action_place_offered"]


def test_csv_is_formula_safe_and_audited(client, organiser):  # noqa: F811
    _, group = organiser
    action = make_action(group)
    add_signup(action, "eve@example.org", name='=HYPERLINK("http://x")', phone="+44 1")
    response = client.get(f"/g/{group.slug}/manage/actions/{action.id}/signups.csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert rows[0][:2] == ["Name", "Email"]
    assert rows[1][0].startswith("'=") and rows[1][1] == "eve@example.org"
    assert rows[1][2] == "'+44 1"
    assert db.session.scalar(
        select(AuditEvent).where(
            AuditEvent.event == "signups.exported_csv", AuditEvent.group_id == group.id
        )  # fmt: skip
    )


def test_check_in_toggles(client, organiser):  # noqa: F811
    _, group = organiser
    action = make_action(group)
    zed = add_signup(action, "zed@example.org", name="Zed")
    add_signup(action, "amy@example.org", name="amy")
    add_signup(action, "wait@example.org", name="Waiting Person", status=SignupStatus.WAITLISTED)
    page = client.get(f"/g/{group.slug}/manage/actions/{action.id}/check-in")
    body = page.get_data(as_text=True)
    assert body.index("amy") < body.index("Zed")  # alphabetical
    assert "Waiting Person" not in body
    url = f"/g/{group.slug}/manage/actions/{action.id}/check-in/{zed.id}"
    assert post(client, url).status_code == 302
    db.session.refresh(zed)
    assert zed.checked_in_at is not None
    post(client, url)
    db.session.refresh(zed)
    assert zed.checked_in_at is None


def test_walk_ins_with_and_without_email(client, organiser):  # noqa: F811
    _, group = organiser
    action = make_action(group, capacity=1)
    add_signup(action, "full@example.org")
    url = f"/g/{group.slug}/manage/actions/{action.id}/check-in/walk-in"
    assert post(client, url, {"name": "Dee"}).status_code == 302
    assert post(client, url, {"name": "Kim", "email": "Kim@Example.org"}).status_code == 302
    walk_ins = db.session.scalars(
        select(ActionSignup).where(ActionSignup.action_id == action.id,
                                   ActionSignup.walk_in.is_(True)).order_by(ActionSignup.id)
    ).all()  # fmt: skip
    assert [w.name for w in walk_ins] == ["Dee", "Kim"]
    assert all(w.status == SignupStatus.CONFIRMED and w.checked_in_at for w in walk_ins)
    assert organising.is_placeholder_email(walk_ins[0].email)
    assert walk_ins[1].email == "kim@example.org"
    # Nothing is mailed to a walk-in, and the placeholder is never shown.
    assert (
        db.session.scalar(
            select(OutboxMessage).where(OutboxMessage.to_addr.endswith("@walk-in.invalid"))
        )
        is None
    )
    body = client.get(f"/g/{group.slug}/manage/actions/{action.id}/signups").get_data(as_text=True)
    assert "walk-in.invalid" not in body and "no email" in body
    response = post(client, url, {"name": "<b>x</b>", "email": "not an email"})
    assert response.status_code == 422


def test_after_action_counts(client, organiser):  # noqa: F811
    _, group = organiser
    action = make_action(group)
    came = add_signup(action, "came@example.org")
    add_signup(action, "noshow@example.org")
    add_signup(action, "wait@example.org", SignupStatus.WAITLISTED)
    add_signup(action, "gone@example.org", SignupStatus.CANCELLED)
    post(client, f"/g/{group.slug}/manage/actions/{action.id}/check-in/walk-in", {"name": "Dee"})
    came.checked_in_at = utcnow()
    action.starts_at = utcnow() - timedelta(hours=3)
    action.ends_at = utcnow() - timedelta(hours=1)
    db.session.flush()
    body = client.get(f"/g/{group.slug}/manage/actions/{action.id}").get_data(as_text=True)
    for text in ("Signed up (with a place): 3", "On the waitlist: 1", "Cancelled: 1",
                 "Attended: 2", "No-shows: 1", "Walk-ins: 1"):  # fmt: skip
        assert text in body, text


def test_email_attendees_only_reaches_people_with_a_place(client, organiser):  # noqa: F811
    _, group = organiser
    action = make_action(group)
    add_signup(action, "placed@example.org")
    add_signup(action, "blocked@example.org")
    add_signup(action, "waiting@example.org", SignupStatus.WAITLISTED)
    add_signup(action, "gone@example.org", SignupStatus.CANCELLED)
    db.session.add(
        Suppression(group_id=group.id, email="blocked@example.org", reason=SuppressionReason.MANUAL)
    )
    db.session.flush()
    post(client, f"/g/{group.slug}/manage/actions/{action.id}/check-in/walk-in", {"name": "Dee"})
    page = client.get(f"/g/{group.slug}/manage/actions/{action.id}").get_data(as_text=True)
    assert "This goes to 1 person" in page
    response = post(client, f"/g/{group.slug}/manage/actions/{action.id}/email",
                    {"subject": "Bring a banner", "message": "See you **there**."})  # fmt: skip
    assert response.status_code == 302
    [message] = mail_to("placed@example.org")
    assert message.template == "action_message" and message.category == "transactional"
    assert message.subject == "Bring a banner"
    assert "<strong>there</strong>" in message.html_body
    assert "See you there." in message.text_body and "**" not in message.text_body
    for address in ("blocked@example.org", "waiting@example.org", "gone@example.org"):
        assert mail_to(address) == []
    assert (
        db.session.scalar(
            select(OutboxMessage).where(OutboxMessage.to_addr.endswith("@walk-in.invalid"))
        )
        is None
    )


def test_email_attendees_refuses_bad_input(client, organiser):  # noqa: F811
    _, group = organiser
    action = make_action(group)
    add_signup(action, "placed@example.org")
    url = f"/g/{group.slug}/manage/actions/{action.id}/email"
    for data in ({"subject": "<script>x</script>", "message": "Hi"},
                 {"subject": "Hi", "message": "x" * 20_001},
                 {"subject": "", "message": "Hi"}):  # fmt: skip
        response = post(client, url, data)
        assert response.status_code == 422
        assert "<script>x" not in response.get_data(as_text=True)
    assert mail_to("placed@example.org") == []
