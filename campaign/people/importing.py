"""CSV import of supporters: column mapping, a preview, and a report of rejected rows.

Built for lists of a million rows: rows are validated in Python and written in chunks
(one SELECT for the chunk's existing addresses, bulk INSERT ... RETURNING for new ones,
bulk UPDATE for known ones), never one query per row. One address is one supporter:
known addresses are updated (a detail is never blanked). Repeats of an address inside
the file are merged into one supporter (a later row's details win where it has them),
counted once, and reported row by row ("rows 4 and 9 have the same address: ...").

From the web pages an import is a background job (``run_import_job``): the upload
waits in the instance folder's ``uploads/``, each chunk is committed on its own (so
other groups' writes never wait behind a big file), the progress page follows it, and
the upload is deleted at the end.

Consent is never invented. Imported people get the group's updates only when the
organiser states that they agreed and how (e.g. "sign-up sheet at the March public
meeting"): that statement is stored as the consent wording of every imported row.
"""

from __future__ import annotations

import csv
import io
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import sqlalchemy as sa
from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import insert, select

from campaign.accounts.models import User
from campaign.core import audit, jobs
from campaign.core.addresses import InvalidEmail, normalise_email
from campaign.core.models import utcnow
from campaign.extensions import db
from campaign.groups.models import Group
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
# Rows of each kind (not imported, same address) kept for the finished page.
SHOWN_ON_PAGE = 200
JOB_KIND = "people.import"
# Details whose origin is reported when rows share an address, with a bit each.
_DETAIL_BITS = {"first_name": 1, "last_name": 2, "phone": 4, "postcode": 8}
_DETAIL_NAMES = {
    "first_name": _l("first name"),
    "last_name": _l("last name"),
    "phone": _l("phone"),
    "postcode": _l("postcode"),
}

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


def check_mapping(mapping: dict[int, str]) -> None:
    """Refuse a mapping that cannot work, before any row is read."""
    if "email" not in mapping.values():
        raise ImportError_(_l("Choose which column holds the email address."))
    if len([v for v in mapping.values() if v]) != len({v for v in mapping.values() if v}):
        raise ImportError_(_l("Each field can come from one column only."))


@dataclass
class ImportReport:
    """What an import did. ``notes``, when given, receives every rejected and repeated
    row as CSV (line, what happened, why), so nothing is lost past the kept samples."""

    created: int = 0
    updated: int = 0
    subscribed: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)
    rejected_total: int = 0
    duplicates: list[tuple[int, str]] = field(default_factory=list)
    duplicates_total: int = 0
    keep: int = MAX_REJECTS_KEPT
    notes: Any = None  # a csv.writer

    def reject(self, line: int, reason: str) -> None:
        self.rejected_total += 1
        if len(self.rejected) < self.keep:
            self.rejected.append((line, reason))
        if self.notes is not None:
            self.notes.writerow([line, "not imported", reason])

    def repeated(self, line: int, reason: str) -> None:
        self.duplicates_total += 1
        if len(self.duplicates) < self.keep:
            self.duplicates.append((line, reason))
        if self.notes is not None:
            self.notes.writerow([line, "same address", reason])

    def counts(self) -> dict[str, int]:
        return {
            "created": self.created, "updated": self.updated, "subscribed": self.subscribed,
            "rejected_total": self.rejected_total, "duplicates_total": self.duplicates_total,
        }  # fmt: skip


@dataclass
class _Row:
    line: int
    email: str
    details: dict[str, str]
    tags: list[str]
    repeat: bool = False  # the address came earlier in the file


class _Repeats:
    """Which rows of the file share an address, and which row each kept detail came from.

    One small int per address (first line and which details it had) keeps a million
    rows' worth in memory; the per-detail origin is kept only for repeated addresses.
    """

    def __init__(self) -> None:
        self.first: dict[int, int] = {}  # hash(address) -> first line << 4 | detail bits
        self.origin: dict[int, dict[str, int]] = {}  # repeated only: detail -> line

    def see(self, row: _Row) -> tuple[int, dict[str, int]] | None:
        """Remember the row; for a repeat, the first line and where each detail is from."""
        key = hash(row.email)
        bits = 0
        for name in row.details:
            bits |= _DETAIL_BITS.get(name, 0)
        earlier = self.first.get(key)
        if earlier is None:
            self.first[key] = row.line << 4 | bits
            return None
        first_line = earlier >> 4
        origin = self.origin.get(key)
        if origin is None:
            origin = {n: first_line for n, bit in _DETAIL_BITS.items() if earlier & bit}
            self.origin[key] = origin
        for name in row.details:
            if name in _DETAIL_BITS:
                origin[name] = row.line
        return first_line, origin


def _repeat_reason(first_line: int, line: int, origin: dict[str, int]) -> str:
    by_line: dict[int, list[str]] = {}
    for name in _DETAIL_BITS:  # a fixed order: first name, last name, phone, postcode
        if name in origin:
            by_line.setdefault(origin[name], []).append(str(_DETAIL_NAMES[name]))
    if not by_line:
        return str(
            _l("rows %(first)d and %(line)d have the same address: imported once",
               first=first_line, line=line)
        )  # fmt: skip
    kept = [
        str(_l("row %(line)d's %(details)s", line=source, details=" and ".join(names)))
        for source, names in sorted(by_line.items(), key=lambda item: -item[0])
    ]
    return str(
        _l("rows %(first)d and %(line)d have the same address: kept %(kept)s",
           first=first_line, line=line, kept=" and ".join(kept))
    )  # fmt: skip


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


def _marked_repeats(
    rows: Iterator[_Row], repeats: _Repeats, report: ImportReport
) -> Iterator[_Row]:
    for row in rows:
        seen = repeats.see(row)
        if seen is not None:
            row.repeat = True
            report.repeated(row.line, _repeat_reason(seen[0], row.line, seen[1]))
        yield row


def import_supporters(
    group: Group,
    actor: User,
    text: str,
    mapping: dict[int, str],
    *,
    source: str,
    consent_statement: str = "",
    report: ImportReport | None = None,
    after_chunk: Callable[[ImportReport, int], None] | None = None,
    resume_after: int = 0,
) -> ImportReport:
    """Import a CSV's rows into the group's supporters; flushes, never commits.

    ``mapping`` maps column indexes to field names; one column must be ``email``.
    With a ``consent_statement`` every imported (not suppressed, not unsubscribed)
    person is subscribed, and the statement is kept as their consent wording.
    ``after_chunk(report, last_line)`` runs after each chunk is written (a job commits
    there). ``resume_after`` skips the rows up to that line, which an earlier run wrote
    (``report`` then carries that run's counts); they are still read, for the repeats.
    """
    check_mapping(mapping)
    report = report if report is not None else ImportReport()
    reader = _reader(text)
    next(reader, None)  # the header
    numbered = ((line, row) for line, row in enumerate(reader, start=2))
    repeats = _Repeats()
    if resume_after:
        skipped = ImportReport(keep=0)  # already reported by the earlier run
        for line, raw in numbered:
            for row in _clean_rows([(line, raw)], mapping, skipped):
                repeats.see(row)
            if line >= resume_after:
                break
    tag_ids: dict[str, int] = {
        tag.name.lower(): tag.id
        for tag in db.session.scalars(select(Tag).where(Tag.group_id == group.id))
    }
    rows = _marked_repeats(_clean_rows(numbered, mapping, report), repeats, report)
    for chunk in _chunks(rows, CHUNK):
        _write_chunk(group, actor, chunk, report, tag_ids, source, consent_statement)
        if after_chunk is not None:
            after_chunk(report, chunk[-1].line)
    audit.record(
        "supporters.imported", actor_id=actor.id, group_id=group.id, created=report.created,
        updated=report.updated, rejected=report.rejected_total,
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
            earlier.repeat = earlier.repeat and row.repeat
        else:
            merged[row.email] = row
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

    # Known addresses: fill in details, never blank one.
    updates = [{"id": ids[email], "updated_at": now, **merged[email].details} for email in statuses]
    if updates:
        db.session.execute(
            sa.update(Supporter).execution_options(synchronize_session=False), updates
        )
    # An address first met in an earlier chunk of this file was counted there.
    report.updated += sum(1 for email in statuses if not merged[email].repeat)

    # New addresses: one INSERT ... RETURNING for the chunk.
    new_rows = [
        {
            "group_id": group.id, "email": email, "source": source[:120],
            "first_name": r.details.get("first_name", ""),
            "last_name": r.details.get("last_name", ""),
            "phone": r.details.get("phone", ""),
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
        for supporter_id, email in returned:
            ids[email] = supporter_id
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


# --- the import as a background job --------------------------------------------------------


def upload_dir() -> Path:
    """Uploads wait here, in the instance folder (never under static/), until imported."""
    directory = Path(current_app.instance_path) / "uploads"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def upload_path(group_id: int, token: str) -> Path | None:
    """A group's upload by token, or None for a token that cannot be one of ours.

    Files are named for their group, so another group's token finds nothing.
    """
    if not token or len(token) > 64 or not token.replace("-", "").replace("_", "").isalnum():
        return None
    return upload_dir() / f"import-{group_id}-{token}.csv"


def forget_stale_uploads(max_age: float = 24 * 3600) -> None:
    """Uploads nobody went on to import, and old reports, go after a day."""
    cutoff = time.time() - max_age
    for path in upload_dir().glob("import-*.csv"):
        if path.stat().st_mtime < cutoff:
            path.unlink(missing_ok=True)


def start_import(
    group: Group,
    actor: User,
    token: str,
    mapping: dict[int, str],
    *,
    name: str,
    consent_statement: str,
    notes_token: str,
) -> jobs.BackgroundJob:
    """Check the mapping and queue the import of an upload as a job (flushes)."""
    check_mapping(mapping)
    path = upload_path(group.id, token)
    if path is None or not path.exists():
        raise ImportError_(_l("That upload has expired or was already imported."))
    with path.open("rb") as handle:
        lines = sum(block.count(b"\n") for block in iter(lambda: handle.read(1 << 20), b""))
    return jobs.create_job(
        group.id, JOB_KIND, actor_id=actor.id, total=max(lines - 1, 1),
        params={"token": token, "mapping": {str(k): v for k, v in mapping.items()},
                "name": name[:80], "statement": consent_statement, "notes": notes_token},
    )  # fmt: skip


def _open_notes(path: Path, keep_bytes: int | None) -> TextIO:
    if keep_bytes is None or not path.exists():
        handle = path.open("w", encoding="utf-8", newline="")
        csv.writer(handle).writerow(["line", "what happened", "why"])
        return handle
    handle = path.open("r+", encoding="utf-8", newline="")
    handle.truncate(keep_bytes)  # drop what a killed run wrote after its last commit
    handle.seek(keep_bytes)
    return handle


def _samples(path: Path) -> tuple[list[list[Any]], list[list[Any]]]:
    rejected: list[list[Any]] = []
    repeated: list[list[Any]] = []
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        next(reader, None)
        for line, what, why in reader:
            target = rejected if what == "not imported" else repeated
            if len(target) < SHOWN_ON_PAGE:
                target.append([int(line), why])
            if len(rejected) >= SHOWN_ON_PAGE and len(repeated) >= SHOWN_ON_PAGE:
                break
    return rejected, repeated


@jobs.handles(JOB_KIND)
def run_import_job(job: jobs.BackgroundJob, progress: jobs.Progress) -> dict[str, Any]:
    """Import an upload chunk by chunk, committing each; resumes after a killed worker."""
    params = job.params
    group = db.session.get(Group, job.group_id)
    actor = db.session.get(User, job.created_by_id) if job.created_by_id else None
    path = upload_path(job.group_id, params["token"])
    notes_path = upload_path(job.group_id, params["notes"])
    if group is None or actor is None or path is None or notes_path is None:
        raise jobs.JobFailed(str(_l("The group or the person who started this is gone.")))
    if not path.exists():
        raise jobs.JobFailed(str(_l("The uploaded file is gone. Please upload it again.")))
    mapping = {int(k): v for k, v in params["mapping"].items()}
    checkpoint = progress.checkpoint
    report = ImportReport(keep=0)
    resume_after = 0
    if checkpoint:
        resume_after = checkpoint["line"]
        for key, value in checkpoint["counts"].items():
            setattr(report, key, value)
    notes_handle = _open_notes(notes_path, checkpoint["notes_bytes"] if checkpoint else None)
    report.notes = csv.writer(notes_handle)

    def after_chunk(so_far: ImportReport, line: int) -> None:
        notes_handle.flush()
        progress.update(
            done=min(line - 1, job.total), errors=so_far.rejected_total,
            checkpoint={"line": line, "counts": so_far.counts(),
                        "notes_bytes": notes_handle.tell()},
        )  # fmt: skip

    try:
        text = path.read_text(encoding="utf-8")
        try:
            import_supporters(
                group, actor, text, mapping, source=f"import:{params['name']}",
                consent_statement=params["statement"], report=report,
                after_chunk=after_chunk, resume_after=resume_after,
            )  # fmt: skip
        except ImportError_ as exc:
            raise jobs.JobFailed(str(exc)) from None
        notes_handle.flush()
    finally:
        notes_handle.close()
        path.unlink(missing_ok=True)  # imported or given up on: the upload goes
    rejected, repeated = _samples(notes_path)
    if not report.rejected_total and not report.duplicates_total:
        notes_path.unlink(missing_ok=True)
    job.done = job.total
    job.errors = report.rejected_total
    return {
        **report.counts(), "name": params["name"], "rejected": rejected, "duplicates": repeated,
        "notes": params["notes"] if report.rejected_total or report.duplicates_total else None,
    }  # fmt: skip
