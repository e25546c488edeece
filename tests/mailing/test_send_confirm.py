"""Send now takes a confirmation that names the count and the subject; nothing is queued
before its one button is pressed, and the queueing then runs as a background job."""

from __future__ import annotations

import html
from collections import Counter

from sqlalchemy import func, select

from campaign.core import jobs
from campaign.core.jobs import BackgroundJob, JobStatus
from campaign.core.outbox import OutboxMessage
from campaign.extensions import db
from campaign.groups.models import Role
from campaign.mailing import services
from campaign.mailing.models import Mailing, MailingStatus
from campaign.mailing.tasks import SEND_JOB
from tests.conftest import csrf_token, login, post
from tests.mailing.helpers import add_draft, add_many_subscribers, add_supporter, rows_of

QUESTION = "Send 'Save our A&E' to 1,234 people now?"


def _text(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def _status(mailing: Mailing) -> str:
    return db.session.scalar(select(Mailing.status).where(Mailing.id == mailing.id))


def _to_confirmation(client, group, mailing) -> str:
    response = post(client, f"/g/{group.slug}/mailings/{mailing.id}/send", {"when": "now"})
    assert response.status_code == 302
    return response.headers["Location"]


def test_the_confirmation_names_count_and_subject_and_queues_nothing(client, group, organiser):
    add_many_subscribers(group, 1234)
    mailing = add_draft(group, subject="Save our A&E")
    login(client, organiser)
    confirm_url = _to_confirmation(client, group, mailing)
    assert confirm_url.endswith(f"/mailings/{mailing.id}/send-now")
    page = client.get(confirm_url)
    body = _text(page)
    assert page.status_code == 200 and QUESTION in body
    assert body.count('type="submit"') == 2  # the one button (and the header's log out)
    assert rows_of(mailing) == [] and _status(mailing) == MailingStatus.DRAFT
    assert db.session.scalar(select(func.count()).select_from(BackgroundJob)) == 0

    response = client.post(confirm_url, data={"csrf_token": csrf_token(client), "expected": "1234"})
    assert response.status_code == 302 and "/sending/" in response.headers["Location"]
    progress = _text(client.get(response.headers["Location"]))
    assert "Queued for 1,234 people: delivery is under way." in progress
    rows = rows_of(mailing)
    assert len(rows) == 1234 and len({r.to_addr for r in rows}) == 1234
    assert _status(mailing) in (MailingStatus.SENDING, MailingStatus.SENT)
    job = db.session.scalar(select(BackgroundJob).where(BackgroundJob.kind == SEND_JOB))
    assert job.status == JobStatus.DONE and job.done == job.total == 1234


def test_a_big_send_is_queued_in_chunks_exactly_once(client, group, organiser, monkeypatch):
    monkeypatch.setattr(services, "QUEUE_CHUNK", 100)
    add_many_subscribers(group, 450)
    mailing = add_draft(group)
    login(client, organiser)
    confirm_url = _to_confirmation(client, group, mailing)
    client.post(confirm_url, data={"csrf_token": csrf_token(client), "expected": "450"})
    per_address = Counter(r.to_addr for r in rows_of(mailing))
    assert len(per_address) == 450 and set(per_address.values()) == {1}
    assert db.session.get(Mailing, mailing.id).recipient_count == 450


def test_a_send_job_stopped_mid_way_carries_on_without_repeats(app, group, organiser, session):
    add_many_subscribers(group, 250)
    mailing = add_draft(group)
    services.begin_send(organiser, group, mailing)
    job = jobs.create_job(group.id, SEND_JOB, actor_id=organiser.id,
                          params={"mailing_id": mailing.id}, total=250)  # fmt: skip
    db.session.commit()
    # What a worker had committed before it was killed: one chunk and its checkpoint.
    count, after = services.queue_next_recipients(group, mailing, 0, limit=100)
    jobs.Progress(job).update(done=count, checkpoint={"after": after})
    assert jobs.run(job.id) == JobStatus.DONE
    per_address = Counter(r.to_addr for r in rows_of(mailing))
    assert len(per_address) == 250 and set(per_address.values()) == {1}
    assert jobs.run(job.id) == JobStatus.DONE  # run again (a redelivered task): nothing more
    assert len(rows_of(mailing)) == 250


def test_the_list_changed_since_the_page_was_shown(client, group, organiser):
    add_supporter(group, "one@example.org")
    mailing = add_draft(group)
    login(client, organiser)
    confirm_url = _to_confirmation(client, group, mailing)
    add_supporter(group, "two@example.org")
    db.session.commit()
    response = client.post(confirm_url, data={"csrf_token": csrf_token(client), "expected": "1"})
    body = _text(response)
    assert response.status_code == 409
    assert "it was 1, it is now 2" in body and "to 2 people now?" in body
    assert rows_of(mailing) == [] and _status(mailing) == MailingStatus.DRAFT


def test_bad_or_missing_confirmation_input_sends_nothing(client, group, organiser):
    add_supporter(group, "one@example.org")
    mailing = add_draft(group)
    login(client, organiser)
    confirm_url = _to_confirmation(client, group, mailing)
    for data in ({}, {"expected": ""}, {"expected": "-1"}, {"expected": "1" * 20},
                 {"expected": "<b>"}):  # fmt: skip
        response = client.post(confirm_url, data={"csrf_token": csrf_token(client)} | data)
        assert response.status_code == 422, data
        assert "The page was incomplete" in _text(response)
    assert client.post(confirm_url, data={"expected": "1"}).status_code == 400  # no CSRF
    assert rows_of(mailing) == [] and _status(mailing) == MailingStatus.DRAFT


def test_confirming_twice_sends_once(client, group, organiser):
    add_supporter(group, "one@example.org")
    mailing = add_draft(group)
    login(client, organiser)
    confirm_url = _to_confirmation(client, group, mailing)
    token = csrf_token(client)
    first = client.post(confirm_url, data={"csrf_token": token, "expected": "1"})
    second = client.post(confirm_url, data={"csrf_token": token, "expected": "1"})
    assert first.status_code == 302 and "/sending/" in first.headers["Location"]
    assert second.status_code == 302 and second.headers["Location"].endswith(
        f"/mailings/{mailing.id}"
    )
    assert len(rows_of(mailing)) == 1
    assert db.session.scalar(select(func.count()).select_from(BackgroundJob)) == 1
    # The confirmation page of a sent mailing leads to its report.
    assert client.get(confirm_url).headers["Location"].endswith(f"/mailings/{mailing.id}")


def test_an_empty_list_never_reaches_the_confirmation(client, group, organiser):
    mailing = add_draft(group)
    login(client, organiser)
    response = post(client, f"/g/{group.slug}/mailings/{mailing.id}/send", {"when": "now"})
    assert response.status_code == 422 and "Nobody on that list" in _text(response)
    response = client.get(f"/g/{group.slug}/mailings/{mailing.id}/send-now")
    assert response.status_code == 302 and response.headers["Location"].endswith("/preview")


def test_send_pages_are_for_the_groups_organisers_only(app, client, group, organiser, make):
    add_supporter(group, "secret-fan@example.org")
    mailing = add_draft(group, subject="Secret subject")
    login(client, organiser)
    confirm_url = _to_confirmation(client, group, mailing)
    job_url = client.post(
        confirm_url, data={"csrf_token": csrf_token(client), "expected": "1"}
    ).headers["Location"]
    other_draft = add_draft(group, subject="Another secret")
    db.session.commit()
    other_confirm = f"/g/{group.slug}/mailings/{other_draft.id}/send-now"
    # The job belongs to its mailing: under another mailing's URL it finds nothing.
    wrong_mailing = job_url.replace(f"/mailings/{mailing.id}/", f"/mailings/{other_draft.id}/")
    assert client.get(wrong_mailing).status_code == 404
    outsider = make.user()
    theirs = make.group(organiser=outsider)
    outsider_client = app.test_client()
    login(outsider_client, outsider)
    for url in (job_url, other_confirm):
        assert outsider_client.get(url).status_code == 404
    job_id = job_url.rsplit("/", 1)[1]
    their_draft = add_draft(theirs)
    db.session.commit()
    assert outsider_client.get(
        f"/g/{theirs.slug}/mailings/{their_draft.id}/sending/{job_id}"
    ).status_code == 404  # fmt: skip
    for role in (Role.MEMBER, Role.VOLUNTEER, Role.CASEWORKER):
        person = make.user()
        make.member(group, person, role)
        member_client = app.test_client()
        login(member_client, person)
        for url in (job_url, other_confirm):
            response = member_client.get(url)
            assert response.status_code == 403, (role, url)
            assert "Secret subject" not in response.get_data(as_text=True)
        response = member_client.post(
            other_confirm, data={"csrf_token": csrf_token(member_client), "expected": "1"}
        )
        assert response.status_code == 403
    assert rows_of(other_draft) == []
    assert db.session.scalar(
        select(func.count()).select_from(OutboxMessage).where(
            OutboxMessage.mailing_id == other_draft.id)
    ) == 0  # fmt: skip
