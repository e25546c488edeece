"""Sending: who gets it, scheduling, the scheduler, finished state, counts, access."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from campaign.core.models import utcnow
from campaign.core.outbox import MailCategory, OutboxMessage, OutboxStatus
from campaign.extensions import db
from campaign.groups.models import GroupStatus, Role
from campaign.mailing import services
from campaign.mailing.models import MailingStatus
from campaign.mailing.tasks import run_due_mailings
from campaign.people.models import (
    ConsentMethod,
    Suppression,
    SuppressionReason,
    UpdatesStatus,
)
from campaign.people.services import unsubscribe
from tests.conftest import login, post
from tests.mailing.helpers import add_draft, add_supporter, add_tag, rows_of, send_now_through_pages


def _everyone(group, make):
    """One supporter in each state; only the two 'fine' ones may ever get campaign mail."""
    nurses = add_tag(group, "nurses")
    people = {
        "fine": add_supporter(group, "fine@example.org", first_name="Ana"),
        "fine-nurse": add_supporter(group, "nurse@example.org", tags=[nurses]),
        "pending": add_supporter(group, "pending@example.org", status=UpdatesStatus.PENDING),
        "none": add_supporter(group, "none@example.org", status=UpdatesStatus.NONE),
        "unsubscribed": add_supporter(
            group, "gone@example.org", status=UpdatesStatus.UNSUBSCRIBED, tags=[nurses]
        ),
        "erased": add_supporter(group, "erased@example.org", erased=True, tags=[nurses]),
        "bounced": add_supporter(
            group, "bounced@example.org", suppressed=SuppressionReason.HARD_BOUNCE, tags=[nurses]
        ),
    }
    # The same address subscribed in another group is that group's business only.
    add_supporter(make.group("Other group"), "other-group@example.org")
    return people, nurses


def test_send_now_queues_exactly_the_eligible_recipients(client, group, organiser, make):
    people, _nurses = _everyone(group, make)
    mailing = add_draft(group)
    login(client, organiser)
    preview = client.get(f"/g/{group.slug}/mailings/{mailing.id}/preview").get_data(as_text=True)
    shown = int(re.search(r"<strong>(\d+) (?:person|people)</strong>", preview).group(1))

    response = send_now_through_pages(client, group, mailing)
    assert response.status_code == 302
    rows = rows_of(mailing)
    assert sorted(r.to_addr for r in rows) == ["fine@example.org", "nurse@example.org"]
    assert shown == len(rows) == 2
    for row in rows:
        assert row.category == MailCategory.MARKETING
        assert row.group_id == group.id and row.mailing_id == mailing.id
        assert row.supporter_id in {people["fine"].id, people["fine-nurse"].id}
        assert row.subject == "Rally on Saturday"
    ana = next(r for r in rows if r.to_addr == "fine@example.org")
    other = next(r for r in rows if r.to_addr == "nurse@example.org")
    assert "Hello Ana!" in ana.text_body and "Hello friend!" in other.text_body
    assert ana.headers["List-Unsubscribe"] != other.headers["List-Unsubscribe"]
    db.session.refresh(mailing)
    assert mailing.recipient_count == 2 and mailing.queued_at is not None


def test_a_tag_segment_only_reaches_eligible_tagged_people(session, group, organiser, make):
    people, nurses = _everyone(group, make)
    mailing = add_draft(group, segment={"kind": "tag", "tag_id": nurses.id})
    assert services.recipient_count(group, mailing.segment) == 1
    assert services.send_now(organiser, group, mailing) == 1
    assert [r.supporter_id for r in rows_of(mailing)] == [people["fine-nurse"].id]


def test_sending_twice_queues_once(session, group, organiser):
    add_supporter(group, "fine@example.org")
    mailing = add_draft(group)
    services.send_now(organiser, group, mailing)
    try:
        services.send_now(organiser, group, mailing)
    except services.MailingError as exc:
        assert "already been sent" in str(exc)
    else:
        raise AssertionError("a second send was allowed")
    assert len(rows_of(mailing)) == 1


def test_nothing_is_sent_to_an_empty_list_or_from_an_unapproved_group(client, make, organiser):
    empty = make.group("Empty", organiser=organiser)
    pending = make.group("Pending", organiser=organiser, status=GroupStatus.PENDING)
    add_supporter(pending, "fine@example.org")
    login(client, organiser)
    for group, message in (
        (empty, "Nobody on that list"),
        (pending, "once the group has been approved"),
    ):
        mailing = add_draft(group)
        response = post(client, f"/g/{group.slug}/mailings/{mailing.id}/send", {"when": "now"})
        assert response.status_code == 422
        assert message in response.get_data(as_text=True)
        assert rows_of(mailing) == []


# --- scheduling -------------------------------------------------------------------------------


def test_schedule_is_stored_in_utc_from_uk_time(client, group, organiser):
    mailing = add_draft(group)
    login(client, organiser)
    year = utcnow().year + 1
    response = post(
        client, f"/g/{group.slug}/mailings/{mailing.id}/send",
        {"when": "later", "send_at": f"{year}-07-01T10:00"},
    )  # fmt: skip
    assert response.status_code == 302
    db.session.refresh(mailing)
    assert mailing.status == MailingStatus.SCHEDULED
    assert mailing.scheduled_for == datetime(year, 7, 1, 9, 0, tzinfo=UTC)  # BST is UTC+1
    assert rows_of(mailing) == []


def test_schedule_refuses_past_invalid_and_impossible_times(client, group, organiser):
    mailing = add_draft(group)
    login(client, organiser)
    past = (datetime.now() - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    cases = [
        ({"when": "later", "send_at": past}, "Choose a time in the future."),
        ({"when": "later", "send_at": "tomorrow at six"}, "Enter a date and time like"),
        ({"when": "later", "send_at": ""}, "Choose the date and time to send it."),
        ({"when": "later", "send_at": "2030-03-31T01:30"}, "the clocks go forward"),
        ({"when": "later", "send_at": "2999-01-01T10:00"}, "within the next year"),
        ({"when": "soon"}, "Not a valid choice"),
    ]
    for data, message in cases:
        response = post(client, f"/g/{group.slug}/mailings/{mailing.id}/send", data)
        assert response.status_code == 422, data
        assert message in response.get_data(as_text=True), data
    db.session.refresh(mailing)
    assert mailing.status == MailingStatus.DRAFT and mailing.scheduled_for is None


def test_a_due_mailing_is_queued_once_by_the_cli(app, client, group, organiser):
    add_supporter(group, "fine@example.org")
    mailing = add_draft(group)
    services.schedule(organiser, group, mailing, utcnow() + timedelta(hours=1))
    later = add_draft(group, subject="Not yet")
    services.schedule(organiser, group, later, utcnow() + timedelta(days=2))
    # Time passes: the first is due now.
    mailing.scheduled_for = utcnow() - timedelta(minutes=1)
    db.session.commit()

    runner = app.test_cli_runner()
    result = runner.invoke(args=["mailing", "send-due"])
    assert result.exit_code == 0, result.output
    assert "1 mailing(s) queued for 1 recipient(s)" in result.output
    again = runner.invoke(args=["mailing", "send-due"])
    assert again.exit_code == 0 and "0 mailing(s) queued" in again.output

    assert [r.to_addr for r in rows_of(mailing)] == ["fine@example.org"]
    assert rows_of(later) == []
    db.session.refresh(mailing)
    db.session.refresh(later)
    assert later.status == MailingStatus.SCHEDULED
    # Delivered in-process (no broker), so the scheduler also saw it finish.
    assert mailing.status == MailingStatus.SENT and mailing.finished_at is not None


def test_due_mailings_service_is_idempotent_and_takes_the_list_at_send_time(
    session, group, organiser
):
    add_supporter(group, "early@example.org")
    mailing = add_draft(group)
    services.schedule(organiser, group, mailing, utcnow() + timedelta(hours=1))
    add_supporter(group, "late@example.org")  # joins after scheduling, before sending
    in_two_hours = utcnow() + timedelta(hours=2)
    assert services.queue_due_mailings(utcnow()) == []
    assert services.queue_due_mailings(in_two_hours) == [mailing]
    assert services.queue_due_mailings(in_two_hours) == []
    assert sorted(r.to_addr for r in rows_of(mailing)) == ["early@example.org", "late@example.org"]
    assert run_due_mailings(in_two_hours)["queued"] == 0


def test_a_scheduled_mailing_can_be_taken_back(client, group, organiser):
    mailing = add_draft(group)
    services.schedule(organiser, group, mailing, utcnow() + timedelta(hours=1))
    db.session.commit()
    login(client, organiser)
    assert post(client, f"/g/{group.slug}/mailings/{mailing.id}/unschedule").status_code == 302
    db.session.refresh(mailing)
    assert mailing.status == MailingStatus.DRAFT and mailing.scheduled_for is None
    assert services.queue_due_mailings(utcnow() + timedelta(hours=2)) == []


# --- finished state and counts ------------------------------------------------------------------


def test_status_stays_sending_until_every_row_is_final(session, group, organiser):
    for name in ("a", "b", "c"):
        add_supporter(group, f"{name}@example.org")
    mailing = add_draft(group)
    services.send_now(organiser, group, mailing)
    a, b, c = rows_of(mailing)
    assert services.refresh_status(mailing).status == MailingStatus.SENDING
    a.status, a.sent_at = OutboxStatus.SENT, utcnow()
    b.status = OutboxStatus.SENDING  # a worker holds it
    assert services.refresh_status(mailing).status == MailingStatus.SENDING
    b.status, b.sent_at = OutboxStatus.SENT, utcnow()
    assert services.refresh_status(mailing).status == MailingStatus.SENDING  # c still queued
    c.status = OutboxStatus.FAILED
    assert services.refresh_status(mailing).status == MailingStatus.SENT
    assert mailing.finished_at == b.sent_at


def test_list_and_report_pages_show_counts_and_who_has_not_received_it(client, group, organiser):
    people = [add_supporter(group, f"p{i}@example.org") for i in range(5)]
    mailing = add_draft(group, subject="March for the NHS")
    services.send_now(organiser, group, mailing)
    rows = {r.to_addr: r for r in rows_of(mailing)}
    for address in ("p0@example.org", "p1@example.org"):
        rows[address].status, rows[address].sent_at = OutboxStatus.SENT, utcnow()
    rows["p2@example.org"].status = OutboxStatus.FAILED
    db.session.add(Suppression(group_id=group.id, email="p2@example.org",
                               reason=SuppressionReason.HARD_BOUNCE))  # fmt: skip
    rows["p3@example.org"].status = OutboxStatus.FAILED  # refused, but not (yet) suppressed
    # p4 waits for a retry (the relay said "later"); p0 unsubscribes after receiving it.
    rows["p4@example.org"].next_attempt_at = utcnow() + timedelta(hours=1)
    unsubscribe(people[0], ConsentMethod.ONE_CLICK)
    db.session.commit()

    login(client, organiser)
    listing = client.get(f"/g/{group.slug}/mailings").get_data(as_text=True)
    for label, number in (("Waiting", 1), ("Delivered", 2), ("Failed", 2), ("Bounced", 1),
                          ("Unsubscribed since", 1)):  # fmt: skip
        assert f'data-label="{label}">{number}</td>' in listing, label
    assert "Sending" in listing

    report = client.get(f"/g/{group.slug}/mailings/{mailing.id}").get_data(as_text=True)
    assert "Not received yet" in report
    for address in ("p2@example.org", "p3@example.org", "p4@example.org"):
        assert address in report
    assert "p0@example.org" not in report and "p1@example.org" not in report

    rows["p4@example.org"].status, rows["p4@example.org"].sent_at = OutboxStatus.SENT, utcnow()
    db.session.commit()
    client.get(f"/g/{group.slug}/mailings")
    db.session.refresh(mailing)
    assert mailing.status == MailingStatus.SENT


def test_report_is_paginated_and_hides_erased_addresses(client, group, organiser, app, monkeypatch):
    monkeypatch.setitem(app.config, "PER_PAGE", 2)
    people = [add_supporter(group, f"p{i}@example.org") for i in range(3)]
    mailing = add_draft(group)
    services.send_now(organiser, group, mailing)
    for row in rows_of(mailing):  # the relay is slow today: none delivered yet
        row.next_attempt_at = utcnow() + timedelta(hours=1)
    people[0].erased_at = utcnow()
    db.session.commit()
    login(client, organiser)
    first = client.get(f"/g/{group.slug}/mailings/{mailing.id}").get_data(as_text=True)
    second = client.get(f"/g/{group.slug}/mailings/{mailing.id}?page=2").get_data(as_text=True)
    assert "(erased on request)" in first and "p0@example.org" not in first
    assert "p1@example.org" in first and "p2@example.org" in second
    assert "Page 1 of 2" in first


# --- access -------------------------------------------------------------------------------------


def test_other_groups_organisers_get_404_and_members_403(client, group, make):
    mailing = add_draft(group)
    outsider = make.user()
    make.group("Group B", organiser=outsider)
    member = make.user()
    make.member(group, member, Role.CASEWORKER)
    urls = [f"/g/{group.slug}/mailings", f"/g/{group.slug}/mailings/new",
            f"/g/{group.slug}/mailings/{mailing.id}",
            f"/g/{group.slug}/mailings/{mailing.id}/preview"]  # fmt: skip
    login(client, outsider)
    for url in urls:
        assert client.get(url).status_code == 404, url
    assert post(client, f"/g/{group.slug}/mailings/{mailing.id}/send",
                {"when": "now"}).status_code == 404  # fmt: skip
    client.post("/logout", data={"csrf_token": ""})
    member_client = client.application.test_client()
    login(member_client, member)
    for url in urls:
        assert member_client.get(url).status_code == 403, url
    assert post(member_client, f"/g/{group.slug}/mailings/{mailing.id}/test").status_code == 403


def test_a_mailing_id_of_another_group_is_not_found(client, group, organiser, make):
    theirs = add_draft(make.group("Theirs"))
    login(client, organiser)
    assert client.get(f"/g/{group.slug}/mailings/{theirs.id}").status_code == 404
    assert client.get(f"/g/{group.slug}/mailings/{theirs.id}/preview").status_code == 404
    assert post(client, f"/g/{group.slug}/mailings/{theirs.id}/send",
                {"when": "now"}).status_code == 404  # fmt: skip
    assert db.session.scalar(select(func.count(OutboxMessage.id))) == 0


def test_the_scheduler_runs_every_minute_through_celery_beat(app, session, group, organiser):
    celery = app.extensions["celery"]
    schedule = {entry["task"] for entry in celery.conf.beat_schedule.values()}
    assert "campaign.send_due_mailings" in schedule
    add_supporter(group, "fine@example.org")
    mailing = add_draft(group)
    services.schedule(organiser, group, mailing, utcnow() + timedelta(minutes=5))
    mailing.scheduled_for = utcnow() - timedelta(seconds=1)
    db.session.commit()
    # No broker in tests: the task runs eagerly, in-process, as the embedded default does.
    result = celery.tasks["campaign.send_due_mailings"].delay().get()
    assert result["queued"] == 1 and result["recipients"] == 1
    assert len(rows_of(mailing)) == 1
