"""The import pages: upload, map columns, consent, report, rejected rows."""

from __future__ import annotations

import io

from sqlalchemy import select

from campaign.extensions import db
from campaign.people.models import Supporter, UpdatesStatus
from tests.conftest import csrf_token, login

CSV = b"Email,First name,Notes\nana@example.org,Ana,x\nbroken,Ben,y\nzoe@example.org,Zoe,z\n"


def _upload(client, group, data: bytes = CSV, name: str = "members.csv"):
    return client.post(
        f"/g/{group.slug}/people/import",
        data={"csrf_token": csrf_token(client), "file": (io.BytesIO(data), name)},
        content_type="multipart/form-data",
    )


def _organiser(client, make):
    organiser = make.user()
    group = make.group(organiser=organiser)
    login(client, organiser)
    return group


def test_upload_preview_map_and_import(client, make):
    group = _organiser(client, make)
    response = _upload(client, group)
    assert response.status_code == 302
    mapping_url = response.headers["Location"]
    page = client.get(mapping_url).get_data(as_text=True)
    assert "ana@example.org" in page and 'value="email" selected' in page
    response = client.post(
        mapping_url,
        data={"csrf_token": csrf_token(client), "column-0": "email", "column-1": "first_name",
              "column-2": ""},
    )  # fmt: skip
    # The import is a background job (run in-process here): the answer is its page.
    assert response.status_code == 302 and "/people/import/jobs/" in response.headers["Location"]
    response = client.get(response.headers["Location"])
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and "Import finished" in body
    assert "2 new supporters added" in body and "1 row not imported" in body
    people = db.session.scalars(select(Supporter).where(Supporter.group_id == group.id)).all()
    assert {p.email for p in people} == {"ana@example.org", "zoe@example.org"}
    assert all(p.updates_status == UpdatesStatus.NONE for p in people)
    assert all(p.source == "import:members.csv" for p in people)
    # The upload is gone once imported; the rejected rows can be downloaded.
    assert client.get(mapping_url).status_code == 302
    rejects = [line for line in body.split('"') if "/rejected.csv" in line][0]
    download = client.get(rejects)
    assert download.status_code == 200 and "not an email address" in download.get_data(as_text=True)


def test_consent_needs_a_statement_and_is_recorded(client, make):
    group = _organiser(client, make)
    mapping_url = _upload(client, group).headers["Location"]
    form = {"csrf_token": csrf_token(client), "column-0": "email", "agreed": "y"}
    response = client.post(mapping_url, data=form)
    assert response.status_code == 422 and "Say how and when they agreed" in response.get_data(
        as_text=True
    )
    response = client.post(mapping_url, data=form | {"statement": "Sign-up sheet, March meeting"})
    assert response.status_code == 302
    ana = db.session.scalar(select(Supporter).where(Supporter.email == "ana@example.org"))
    assert ana.updates_status == UpdatesStatus.SUBSCRIBED
    assert ana.consents[-1].wording == "Sign-up sheet, March meeting"


def test_a_mapping_without_email_is_refused(client, make):
    group = _organiser(client, make)
    mapping_url = _upload(client, group).headers["Location"]
    response = client.post(
        mapping_url, data={"csrf_token": csrf_token(client), "column-1": "first_name"}
    )
    assert response.status_code == 422
    assert "which column holds the email address" in response.get_data(as_text=True)


def test_bad_files_are_refused_with_a_message(client, make):
    group = _organiser(client, make)
    for data in (b"", b"\xff\xfe\x00\x01binary\x00" * 10):
        response = _upload(client, group, data=data)
        assert response.status_code == 422
    response = client.post(
        f"/g/{group.slug}/people/import", data={"csrf_token": csrf_token(client)}
    )
    assert response.status_code == 422 and "Choose a CSV file" in response.get_data(as_text=True)


def test_another_groups_upload_cannot_be_reached(app, client, make):
    group = _organiser(client, make)
    mapping_url = _upload(client, group).headers["Location"]
    token = mapping_url.split("/import/")[1].split("?")[0]
    other_client = app.test_client()
    other_organiser = make.user()
    other_group = make.group(organiser=other_organiser)
    login(other_client, other_organiser)
    # Under their own group's URL the token finds nothing (files are named per group).
    response = other_client.get(f"/g/{other_group.slug}/people/import/{token}")
    assert response.status_code == 302
    assert other_client.get(f"/g/{group.slug}/people/import/{token}").status_code == 404
