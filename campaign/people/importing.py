"""CSV import of supporters: column mapping, a preview, and a report of rejected rows.

Built for lists of 100,000 rows: rows are validated in Python and written in chunks
(one SELECT for the chunk's existing addresses, bulk INSERT ... RETURNING for new ones,
bulk UPDATE for known ones), never one query per row. One address is one supporter:
known addresses are updated (a detail is never blanked), repeats inside the file
update the row made earlier.

Consent is never invented. Imported people get the group's updates only when the
organiser states that they agreed and how (e.g. "sign-up sheet at the March public
meeting"): that statement is stored as the consent wording of every imported row.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import sqlalchemy as sa
from flask_babel import lazy_gettext as _l
from sqlalchemy import insert, select

from campaign.accounts.models import User
from campaign.core import audit
from campaign.core.addresses import InvalidEmail, normalise_email
from campaign.core.models import utcnow
from campaign.extensions import db
from campaign.groups.models import Group
from campaign.people.erasure import erased_among
from campaign.people.models import (
    ConsentAction,
    ConsentMethod,
    ConsentRecord,
    Supporter,
    Suppression,
    Tag,
    UpdatesStatus,
    supporter_tags,
)

CHUNK = 2000
MAX_REJECTS_KEPT = 10_000

# field -> (label, max length)
FIELDS: dict[str, tuple[str, int]] = {
    "email": (_l("Email"), 254),
    "first_name": (_l("First name"), 80),
    "last_name": (_l("Last name"), 80),
    "phone": (_l("Phone"), 40),
    "postcode": (_l("Postcode"), 10),
    "tags": (_l("Tags (separated by ; or ,)"), 600),
}
_GUESSES = {
    "email": ("email", "e-mail", "email address", "mail"),
    "first_name": ("first name", "firstname", "first", "given name", "forename", "name"),
    "last_name": ("last name", "lastname", "surname", "family name"),
    "phone": ("phone", "mobile", "telephone", "phone number", "tel"),
    "postcode": ("postcode", "post code", "zip", "postal code"),
    "tags": ("tags", "tag", "groups", "labels"),
}
_MARKUP = re.compile(r"[<>\x00-\x08\x0b\x0c\x0e-\x1f]")


class ImportError_(ValueError):  # noqa: N801 - "ImportError" is a builtin
    """The file as a whole cannot be imported; the message is safe to show."""


def decode(data: bytes) -> str:
    """UTF-8 (with or without BOM), else Windows-1252, as spreadsheets save it."""
    not_text = ImportError_(_l("The file is not text. Save it from your spreadsheet as CSV."))
    if b"\x00" in data[:65536]:  # spreadsheets (.xlsx, .ods) and other binaries
        raise not_text
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise not_text


def _reader(text: str) -> Iterator[list[str]]:
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    return csv.reader(io.StringIO(text, newline=""), dialect)


@dataclass
class Preview:
    columns: list[str]
    rows: list[list[str]]
    mapping: dict[int, str]  # column index -> field ('' = ignore)


def preview(text: str, sample: int = 5) -> Preview:
    """The header, a few rows, and a guessed mapping of columns to fields."""
    reader = _reader(text)
    try:
        columns = [c.strip() for c in next(reader)]
    except StopIteration:
        raise ImportError_(_l("The file is empty.")) from None
    if not any(columns):
        raise ImportError_(_l("The first row should hold the column names."))
    rows = [row for _, row in zip(range(sample), reader, strict=False)]
    return Preview(columns=columns, rows=rows, mapping=guess_mapping(columns))


def guess_mapping(columns: list[str]) -> dict[int, str]:
    mapping: dict[int, str] = {}
    taken: set[str] = set()
    for index, column in enumerate(columns):
        name = column.strip().lower().replace("_", " ")
        for field_name, names in _GUESSES.items():
            if field_name not in taken and name in names:
                mapping[index] = field_name
                taken.add(field_name)
                break
        else:
            mapping[index] = ""
    return mapping


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    subscribed: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)
    rejected_total: int = 0
    # Rows for people who asked this group to erase them: never imported again.
    skipped_erased: int = 0

    def reject(self, line: int, reason: str) -> None:
        self.rejected_total += 1
        if len(self.rejected) < MAX_REJECTS_KEPT:
            self.rejected.append((line, reason))


@dataclass
class _Row:
    line: int
    email: str
    details: dict[str, str]
    tags: list[str]


def _clean_rows(
    rows: Iterable[tuple[int, list[str]]], mapping: dict[int, str], report: ImportReport
) -> Iterator[_Row]:
    for line, raw in rows:
        if not any(cell.strip() for cell in raw):
            continue  # blank lines are not errors
        values = {name: raw[i].strip() for i, name in mapping.items() if name and i < len(raw)}
        email = values.get("email", "")
        if not email:
            report.reject(line, str(_l("no email address")))
            continue
        try:
            email = normalise_email(email)
        except InvalidEmail:
            report.reject(line, str(_l("“%(value)s” is not an email address", value=email[:80])))
            continue
        problem = None
        for name, value in values.items():
            limit = FIELDS[name][1]
            if len(value) > limit:
                problem = _l(
                    "%(field)s is longer than %(n)d characters", field=FIELDS[name][0], n=limit
                )
            elif _MARKUP.search(value):
                problem = _l("%(field)s contains < > or control characters", field=FIELDS[name][0])
            if problem:
                break
        if problem:
            report.reject(line, str(problem))
            continue
        tags = [t.strip() for t in re.split(r"[;,]", values.get("tags", "")) if t.strip()]
        if any(len(t) > 60 for t in tags):
            report.reject(line, str(_l("a tag is longer than 60 characters")))
            continue
        details = {k: v for k, v in values.items() if k not in ("email", "tags") and v}
        if "postcode" in details:
            details["postcode"] = details["postcode"].upper()
        yield _Row(line=line, email=email, details=details, tags=tags)


def _chunks(items: Iterator[_Row], size: int) -> Iterator[list[_Row]]:
    chunk: list[_Row] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def import_supporters(
    group: Group,
    actor: User,
    text: str,
    mapping: dict[int, str],
    *,
    source: str,
    consent_statement: str = "",
) -> ImportReport:
    """Import a CSV's rows into the group's supporters; flushes, never commits.

    ``mapping`` maps column indexes to field names; one column must be ``email``.
    With a ``consent_statement`` every imported (not suppressed, not unsubscribed)
    person is subscribed, and the statement is kept as their consent wording.
    """
    if "email" not in mapping.values():
        raise ImportError_(_l("Choose which column holds the email address."))
    if len([v for v in mapping.values() if v]) != len({v for v in mapping.values() if v}):
        raise ImportError_(_l("Each field can come from one column only."))
    report = ImportReport()
    reader = _reader(text)
    next(reader, None)  # the header
    numbered = ((line, row) for line, row in enumerate(reader, start=2))
    tag_ids: dict[str, int] = {
        tag.name.lower(): tag.id
        for tag in db.session.scalars(select(Tag).where(Tag.group_id == group.id))
    }
    for chunk in _chunks(_clean_rows(numbered, mapping, report), CHUNK):
        _write_chunk(group, actor, chunk, report, tag_ids, source, consent_statement)
    audit.record(
        "supporters.imported", actor_id=actor.id, group_id=group.id, created=report.created,
        updated=report.updated, rejected=report.rejected_total,
        skipped_erased=report.skipped_erased,
    )  # fmt: skip
    return report


def _write_chunk(
    group: Group,
    actor: User,
    chunk: list[_Row],
    report: ImportReport,
    tag_ids: dict[str, int],
    source: str,
    consent_statement: str,
) -> None:
    merged: dict[str, _Row] = {}
    for row in chunk:  # repeats inside the chunk: later details win, tags add up
        if row.email in merged:
            earlier = merged[row.email]
            earlier.details.update(row.details)
            earlier.tags += row.tags
        else:
            merged[row.email] = row
    for email in erased_among(group.id, list(merged)):
        report.skipped_erased += sum(1 for row in chunk if row.email == email)
        del merged[email]
    emails = list(merged)
    # Plain columns, not ORM objects: nothing to load or expire row by row.
    known = db.session.execute(
        select(Supporter.id, Supporter.email, Supporter.updates_status).where(
            Supporter.group_id == group.id, Supporter.email.in_(emails)
        )
    ).all()
    ids: dict[str, int] = {email: supporter_id for supporter_id, email, _ in known}
    statuses: dict[str, str] = {email: status for _, email, status in known}
    suppressed = set(
        db.session.scalars(
            select(Suppression.email).where(
                Suppression.group_id == group.id, Suppression.email.in_(emails)
            )
        )
    )
    now = utcnow()
    subscribe = bool(consent_statement)

    # Known addresses: fill in details, never blank one. The phone is sealed with its row id.
    updates = [
        _sealed({"id": ids[email], "updated_at": now, **merged[email].details})
        for email in statuses
    ]
    if updates:
        db.session.execute(
            sa.update(Supporter).execution_options(synchronize_session=False), updates
        )
    report.updated += len(updates)

    # New addresses: one INSERT ... RETURNING for the chunk.
    new_rows = [
        {
            "group_id": group.id, "email": email, "source": source[:120],
            "first_name": r.details.get("first_name", ""),
            "last_name": r.details.get("last_name", ""),
            "phone_sealed": "",  # sealed below, once the row has its id
            "postcode": r.details.get("postcode", ""),
            "updates_status": UpdatesStatus.NONE, "consent_version": 0,
            "created_at": now, "updated_at": now,
        }
        for email, r in merged.items() if email not in ids
    ]  # fmt: skip
    if new_rows:
        returned = db.session.execute(
            insert(Supporter).returning(
                Supporter.id, Supporter.email, sort_by_parameter_order=True
            ),
            new_rows,
        )
        phones = []
        for supporter_id, email in returned:
            ids[email] = supporter_id
            if merged[email].details.get("phone"):
                phones.append(
                    _sealed({"id": supporter_id, "phone": merged[email].details["phone"]})
                )
        if phones:
            db.session.execute(
                sa.update(Supporter).execution_options(synchronize_session=False), phones
            )
    report.created += len(new_rows)

    _link_tags(group, merged, ids, tag_ids)
    if subscribe:
        # Never over an unsubscribe or a suppression; the already subscribed stay as they are.
        eligible = [
            email
            for email in merged
            if email not in suppressed
            and statuses.get(email, UpdatesStatus.NONE)
            not in (UpdatesStatus.UNSUBSCRIBED, UpdatesStatus.SUBSCRIBED)
        ]  # fmt: skip
        _subscribe(group, actor, eligible, ids, consent_statement, source, now)
        report.subscribed += len(eligible)
    db.session.flush()


def _sealed(values: dict) -> dict:
    """Bulk-update parameters with a plaintext ``phone`` turned into its stored form."""
    if "phone" in values:
        values["phone_sealed"] = Supporter.phone.seal(values.pop("phone"), values["id"])
    return values


def _link_tags(
    group: Group, merged: dict[str, _Row], ids: dict[str, int], tag_ids: dict[str, int]
) -> None:
    wanted = {t for row in merged.values() for t in row.tags}
    for name in sorted(wanted, key=str.lower):
        if name.lower() not in tag_ids:
            tag = Tag(group_id=group.id, name=name)
            db.session.add(tag)
            db.session.flush()
            tag_ids[name.lower()] = tag.id
    pairs = {(ids[email], tag_ids[t.lower()]) for email, row in merged.items() for t in row.tags}
    if not pairs:
        return
    supporter_ids = {s for s, _ in pairs}
    already = set(
        db.session.execute(
            select(supporter_tags.c.supporter_id, supporter_tags.c.tag_id).where(
                supporter_tags.c.supporter_id.in_(supporter_ids)
            )
        ).all()
    )
    fresh = [{"supporter_id": s, "tag_id": t} for s, t in pairs - already]
    if fresh:
        db.session.execute(insert(supporter_tags), fresh)


def _subscribe(
    group: Group,
    actor: User,
    emails: list[str],
    ids: dict[str, int],
    statement: str,
    source: str,
    now,  # noqa: ANN001
) -> None:
    if not emails:
        return
    chosen = [ids[e] for e in emails]
    db.session.execute(
        sa.update(Supporter)
        .where(Supporter.id.in_(chosen))
        .values(
            updates_status=UpdatesStatus.SUBSCRIBED,
            updates_confirmed_at=now,
            consent_version=Supporter.consent_version + 1,
        )
        .execution_options(synchronize_session=False)
    )
    db.session.execute(
        insert(ConsentRecord),
        [
            {
                "supporter_id": supporter_id, "group_id": group.id, "purpose": "group_updates",
                "action": ConsentAction.GRANTED, "method": ConsentMethod.IMPORT,
                "wording": statement, "recorded_by_id": actor.id, "detail": source[:200],
                "created_at": now, "updated_at": now,
            }
            for supporter_id in chosen
        ],
    )  # fmt: skip


def rejects_csv(report: ImportReport) -> str:
    """The rejected rows as a small CSV the organiser can fix and re-import."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["line", "reason"])
    writer.writerows(report.rejected)
    return out.getvalue()
