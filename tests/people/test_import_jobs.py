"""An import is a background job: the progress page, the report at the end, repeated
addresses reported and counted once, bad input to the mapping form, and who may see it."""

from __future__ import annotations

import html
import io
import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from campaign.core import jobs
from campaign.core.jobs import BackgroundJob, JobStatus
from campaign.core.models import utcnow
from campaign.extensions import db
from campaign.groups.models import Role
from campaign.people import importing
from campaign.people.models import Supporter
from tests.conftest import csrf_token, login

# Line 1 is the header; lines 4 and 9 share an address (in other letter cases): line 4
# has a postcode and no name, line 9 a name and no postcode.
REPEATS = (
    "Email,First name,Postcode\n"
    "a1@example.org,Amara,E1 1AA\n"
    "a2@example.org,Tomasz,\n"
    "Ana@Example.org,,e2 2bb\n"
    "a3@example.org,Leila,\n"
    "a4@example.org,Joe,\n"
    "a5@example.org,Priya,\n"
    "a6@example.org,Kwame,\n"
    "ana@example.org,Ana,\n"
)
WORDING = "rows 4 and 9 have the same address: kept row 9's first name and row 4's postcode"


def _organiser(client, make):
    organiser = make.user()
    group = make.group(organiser=organiser)
    login(client, organiser)
    return organiser, group


def _upload(client, group, data: bytes, name: str = "list.csv") -> str:
    response = client.post(
        f"/g/{group.slug}/people/import",
        data={"csrf_token": csrf_token(client), "file": (io.BytesIO(data), name)},
        content_type="multipart/form-data",
    )
    assert response.status_code == 302, response.get_data(as_text=True)[:400]
    return response.headers["Location"]


def _import(client, group, data: bytes, **form) -> str:
    """Upload, map (the guessed mapping), start; returns the job page's URL."""
    mapping_url = _upload(client, group, data)
    page = client.get(mapping_url).get_data(as_text=True)
    chosen = dict(re.findall(r'name="(column-\d+)">.*?<option value="(\w+)" selected', page, re.S))
    response = client.post(mapping_url, data={"csrf_token": csrf_token(client)} | chosen | form)
    assert response.status_code == 302, response.get_data(as_text=True)[:400]
    assert "/people/import/jobs/" in response.headers["Location"]
    return response.headers["Location"]


def _page(client, url: str) -> str:
    return html.unescape(client.get(url).get_data(as_text=True))


def test_the_import_runs_as_a_job_and_its_page_shows_the_report(app, client, make):
    _, group = _organiser(client, make)
    job_url = _import(client, group, b"Email,First name\nana@example.org,Ana\nbroken,Ben\n")
    response = client.get(job_url)
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Import finished" in body and "1 new supporter added" in body
    assert "1 row not imported" in body and "not an email address" in body
    assert 'http-equiv="refresh"' not in body  # finished: the page stops refreshing
    job = db.session.scalar(select(BackgroundJob).where(BackgroundJob.group_id == group.id))
    assert job.status == JobStatus.DONE and job.kind == "people.import"
    assert job.done == job.total == 2 and job.errors == 1
    # The upload is gone; only the report of rows to fix is kept for download.
    download = [u for u in body.split('"') if u.endswith(".csv") and "/people/import/" in u][0]
    assert not importing.upload_path(group.id, job.params["token"]).exists()
    assert download.rsplit("/", 2)[1] == job.params["notes"]
    assert importing.upload_path(group.id, job.params["notes"]).exists()
    csv_text = client.get(download).get_data(as_text=True)
    assert "line,what happened,why" in csv_text.splitlines()[0]
    assert "3,not imported," in csv_text
    assert db.session.scalar(
        select(Supporter.first_name).where(Supporter.email == "ana@example.org")
    ) == "Ana"  # fmt: skip


@pytest.mark.parametrize("chunk", [2000, 2, 3])
def test_rows_with_the_same_address_are_reported_and_counted_once(
    app, client, make, monkeypatch, chunk
):
    # With chunks of 2 or 3 the two rows are written in different transactions.
    monkeypatch.setattr(importing, "CHUNK", chunk)
    _, group = _organiser(client, make)
    body = _page(client, _import(client, group, REPEATS.encode()))
    assert WORDING in body
    assert "7 new supporters added" in body
    assert "0 supporters already on your list updated" in body
    assert "1 row repeated an address" in body
    ana = db.session.scalars(
        select(Supporter).where(
            Supporter.group_id == group.id, Supporter.email == "ana@example.org"
        )
    ).all()
    assert len(ana) == 1 and (ana[0].first_name, ana[0].postcode) == ("Ana", "E2 2BB")
    count = select(func.count()).select_from(Supporter).where(Supporter.group_id == group.id)
    assert db.session.scalar(count) == 7


def test_a_repeat_of_a_known_supporter_counts_as_one_update(client, make):
    _, group = _organiser(client, make)
    client.get(_import(client, group, b"Email\nana@example.org\n"))
    body = _page(client, _import(client, group, REPEATS.encode()))
    assert "6 new supporters added" in body and "1 supporter already on your list updated" in body
    assert WORDING in body


def test_three_rows_with_one_address_name_where_each_detail_came_from(client, make):
    _, group = _organiser(client, make)
    data = (
        b"Email,First name,Last name,Postcode\n"
        b"x@example.org,Ann,Lee,N1 1AA\n"
        b"x@example.org,,Smith,\n"
        b"x@example.org,,,N2 2BB\n"
    )
    body = _page(client, _import(client, group, data))
    second = "rows 2 and 3 have the same address: kept row 3's last name"
    assert second + " and row 2's first name and postcode" in body
    third = "rows 2 and 4 have the same address: kept row 4's postcode"
    assert third + " and row 3's last name and row 2's first name" in body
    assert "1 new supporter added" in body


def test_a_job_page_in_progress_refreshes_itself_and_loads_the_live_script(client, make):
    organiser, group = _organiser(client, make)
    job = jobs.create_job(group.id, importing.JOB_KIND, actor_id=organiser.id, total=1000)
    job.status, job.done, job.errors = JobStatus.RUNNING, 250, 3
    db.session.commit()
    body = client.get(f"/g/{group.slug}/people/import/jobs/{job.id}").get_data(as_text=True)
    assert '<noscript><meta http-equiv="refresh" content="2"></noscript>' in body
    assert "/static/js/job-progress.js" in body and "<script>" not in body
    assert '<progress id="job-bar-' in body and 'value="25"' in body
    assert "250 of 1,000 rows" in body and "3 problems so far" in body


def test_a_failed_job_says_why_and_offers_to_upload_again(client, make):
    organiser, group = _organiser(client, make)
    job = jobs.create_job(group.id, importing.JOB_KIND, actor_id=organiser.id,
                          params={"token": "gone", "notes": "gonenotes", "mapping": {"0": "email"},
                                  "name": "x.csv", "statement": ""})  # fmt: skip
    db.session.commit()
    assert jobs.run(job.id) == JobStatus.FAILED
    body = client.get(f"/g/{group.slug}/people/import/jobs/{job.id}").get_data(as_text=True)
    assert "The uploaded file is gone. Please upload it again." in body
    assert "Upload the file again" in body and 'http-equiv="refresh"' not in body


def test_bad_mapping_input_is_refused_and_starts_nothing(client, make):
    _, group = _organiser(client, make)
    mapping_url = _upload(client, group, b"Email,Name\nana@example.org,Ana\n")
    token = csrf_token(client)
    cases = [
        ({"column-0": "email", "column-1": "email"}, "Each field can come from one column only."),
        ({"column-0": "nonsense", "column-1": "first_name"}, "which column holds the email"),
        ({"column-0": "email", "statement": "at the stall"}, "Tick the box too"),
        ({"column-0": "email", "agreed": "y", "statement": "x" * 501}, "under 500 characters"),
        ({"column-0": "email", "agreed": "y", "statement": "<b>hi</b>"}, ""),
    ]
    for form, message in cases:
        response = client.post(mapping_url, data={"csrf_token": token} | form)
        assert response.status_code == 422, form
        assert message in response.get_data(as_text=True)
    response = client.post(mapping_url, data={"column-0": "email"})  # no CSRF token
    assert response.status_code in (400, 422)
    assert db.session.scalar(select(func.count()).select_from(BackgroundJob)) == 0
    assert db.session.scalar(select(func.count()).select_from(Supporter)) == 0
    # An unknown token, or one that cannot be a token, finds nothing to import.
    assert client.get(f"/g/{group.slug}/people/import/nosuchtoken").status_code == 302
    assert client.get(f"/g/{group.slug}/people/import/bad.token").status_code == 404


def test_job_pages_are_for_the_groups_organisers_only(app, client, make):
    organiser, group = _organiser(client, make)
    job_url = _import(client, group, b"Email\nsecret-person@example.org\nbroken\n")
    assert client.get(job_url).status_code == 200
    outsider_client = app.test_client()
    outsider = make.user()
    other_group = make.group(organiser=outsider)
    login(outsider_client, outsider)
    response = outsider_client.get(job_url)
    assert response.status_code == 404
    job_id = job_url.rsplit("/", 1)[1]
    # Their own group's URL with this group's job id finds nothing either.
    assert outsider_client.get(
        f"/g/{other_group.slug}/people/import/jobs/{job_id}"
    ).status_code == 404  # fmt: skip
    for role in (Role.MEMBER, Role.VOLUNTEER, Role.CASEWORKER):
        person = make.user()
        make.member(group, person, role)
        member_client = app.test_client()
        login(member_client, person)
        response = member_client.get(job_url)
        assert response.status_code == 403, role
        assert "secret-person" not in response.get_data(as_text=True)


@pytest.mark.slow
def test_a_hundred_thousand_row_file_imports_through_the_pages(client, make):
    # bench/import_bench.py -n 1100000 --emails-only imports the 1.1M-row, 15.7 MiB file.
    _, group = _organiser(client, make)
    rows = 100_000
    data = "Email,First name,Postcode\n" + "".join(
        f"p{i}@example.org,Name{i % 97},E{i % 20 + 1} 1AB\n" for i in range(rows)
    )
    job_url = _import(client, group, data.encode())
    body = _page(client, job_url)
    assert "100000 new supporters added" in body and "0 rows not imported" in body
    job = db.session.scalar(select(BackgroundJob).where(BackgroundJob.group_id == group.id))
    assert job.status == JobStatus.DONE and job.done == job.total == rows
    count = select(func.count()).select_from(Supporter).where(Supporter.group_id == group.id)
    assert db.session.scalar(count) == rows


def test_a_live_job_is_left_alone_and_a_stalled_one_is_started_again(app, client, make):
    organiser, group = _organiser(client, make)
    mapping_url = _upload(client, group, b"Email\na@example.org\nb@example.org\n")
    token = mapping_url.split("/import/")[1].split("?")[0]
    job = importing.start_import(group, organiser, token, {0: "email"}, name="x.csv",
                                 consent_statement="", notes_token="stalledjobnotes")  # fmt: skip
    job.status, job.heartbeat_at = JobStatus.RUNNING, utcnow()
    db.session.commit()
    # Its worker is alive (a fresh heartbeat): neither a second run nor beat touch it.
    assert jobs.run(job.id) == JobStatus.RUNNING
    assert jobs.resume_stalled() == []
    assert db.session.scalar(select(func.count()).select_from(Supporter)) == 0
    # Silent for longer than JOB_STALE_SECONDS: its worker died, beat starts it again.
    job.heartbeat_at = utcnow() - timedelta(seconds=app.config["JOB_STALE_SECONDS"] + 1)
    db.session.commit()
    assert jobs.resume_stalled() == [job.id]
    db.session.refresh(job)
    assert job.status == JobStatus.DONE and job.result["created"] == 2
