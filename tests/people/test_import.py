"""CSV import: mapping, one row per address, rejected rows with reasons, consent."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from campaign.core.audit import AuditEvent
from campaign.extensions import db
from campaign.people import importing, services
from campaign.people.models import (
    ConsentMethod,
    ConsentRecord,
    Supporter,
    SuppressionReason,
    UpdatesStatus,
)

CSV = """Email,First name,Surname,Mobile,Post code,Tags,Notes
ana@example.org,Ana,Silva,07700 900001,e1 6an,nurses; stall,met at stall
BEN@Example.org,Ben,,,,nurses,
not-an-email,Cara,,,,,
,Dev,,,,,
eve@example.org,<b>Eve</b>,,,,,
ana@example.org,,Silva-Jones,,,unison,
frank@example.org,Frank,,,,"{long}",
""".replace("{long}", "x" * 61)


def _mapping(text: str) -> dict[int, str]:
    return importing.preview(text).mapping


def _supporters(group) -> dict[str, Supporter]:
    rows = db.session.scalars(select(Supporter).where(Supporter.group_id == group.id))
    return {s.email: s for s in rows}


def test_preview_guesses_the_mapping(app):
    preview = importing.preview(CSV)
    assert preview.columns[:3] == ["Email", "First name", "Surname"]
    assert [preview.mapping[i] for i in range(7)] == [
        "email", "first_name", "last_name", "phone", "postcode", "tags", ""
    ]  # fmt: skip
    assert len(preview.rows) == 5


def test_import_creates_updates_and_reports_rejects(app, session, make):
    group, organiser = make.group(), make.user()
    report = importing.import_supporters(
        group, organiser, CSV, _mapping(CSV), source="import:test.csv"
    )
    assert (report.created, report.rejected_total) == (2, 4)
    assert dict(report.rejected) == {
        4: "“not-an-email” is not an email address",
        5: "no email address",
        6: "First name contains < > or control characters",
        8: "a tag is longer than 60 characters",
    }
    people = _supporters(group)
    assert set(people) == {"ana@example.org", "ben@example.org"}
    ana = people["ana@example.org"]
    # The repeat later in the file updated the same person and never blanked a detail.
    assert (ana.first_name, ana.last_name, ana.postcode) == ("Ana", "Silva-Jones", "E1 6AN")
    assert sorted(t.name for t in ana.tags) == ["nurses", "stall", "unison"]
    assert ana.source == "import:test.csv"
    # No consent statement: nobody gets marketing mail.
    assert ana.updates_status == UpdatesStatus.NONE and services.count_recipients(group) == 0
    assert db.session.scalar(select(AuditEvent).where(AuditEvent.event == "supporters.imported"))


def test_reimporting_updates_instead_of_duplicating(app, session, make):
    group, organiser = make.group(), make.user()
    for _ in range(2):
        importing.import_supporters(group, organiser, CSV, _mapping(CSV), source="import:a.csv")
    count = db.session.scalar(
        select(func.count(Supporter.id)).where(Supporter.group_id == group.id)
    )
    assert count == 2


def test_a_consent_statement_subscribes_but_never_over_an_opt_out(app, session, make):
    group, organiser = make.group(), make.user()
    gone, _ = services.upsert_supporter(group, "ben@example.org")
    services.unsubscribe(gone, ConsentMethod.UNSUBSCRIBE_PAGE)
    services.suppress(group.id, "cara@example.org", SuppressionReason.HARD_BOUNCE)
    text = "email\nana@example.org\nben@example.org\ncara@example.org\n"
    statement = "Signed the paper sheet at the March public meeting"
    report = importing.import_supporters(
        group, organiser, text, {0: "email"}, source="import:sheet.csv", consent_statement=statement
    )
    assert report.subscribed == 1
    people = _supporters(group)
    assert people["ana@example.org"].updates_status == UpdatesStatus.SUBSCRIBED
    assert people["ben@example.org"].updates_status == UpdatesStatus.UNSUBSCRIBED
    assert people["cara@example.org"].updates_status == UpdatesStatus.NONE
    [record] = db.session.scalars(
        select(ConsentRecord).where(ConsentRecord.supporter_id == people["ana@example.org"].id)
    ).all()
    assert record.method == ConsentMethod.IMPORT and record.wording == statement
    assert record.recorded_by_id == organiser.id
    assert services.count_recipients(group) == 1


def test_imports_stay_inside_their_group(app, session, make):
    group_a, group_b, organiser = make.group(), make.group(), make.user()
    services.upsert_supporter(group_b, "ana@example.org", first_name="Private")
    importing.import_supporters(group_a, organiser, CSV, _mapping(CSV), source="import:x.csv")
    assert _supporters(group_b)["ana@example.org"].first_name == "Private"
    assert len(_supporters(group_b)) == 1


@pytest.mark.parametrize(
    ("text", "mapping", "message"),
    [
        ("", {}, "empty"),
        ("name\nAna\n", {0: "first_name"}, "email address"),
        ("a,b\nx@example.org,y@example.org\n", {0: "email", 1: "email"}, "one column only"),
    ],
)
def test_files_that_cannot_be_imported_say_why(app, session, make, text, mapping, message):
    group, organiser = make.group(), make.user()
    with pytest.raises(importing.ImportError_, match=message):
        if not text:
            importing.preview(text)
        importing.import_supporters(group, organiser, text, mapping, source="import:bad.csv")


def test_spreadsheet_encodings_and_semicolons_are_read(app):
    data = "Email;Name\r\nzoë@example.org;Zoë\r\n".encode("cp1252")
    text = importing.decode(data)
    preview = importing.preview(text)
    assert preview.rows == [["zoë@example.org", "Zoë"]]
    assert importing.decode("\ufeffEmail\n".encode()) == "Email\n"
