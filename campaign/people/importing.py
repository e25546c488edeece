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

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from campaign.accounts.models import User
from campaign.core import audit, jobs
from campaign.core.addresses import InvalidEmail, normalise_email
from campaign.core.models import utcnow
from campaign.extensions import db
from campaign.groups.models import Group
from campaign.people.erasure import erased_among
from campaign.people.models import (
    ConsentAction,
    ConsentMethod,
    Supporter,
    Tag,
    UpdatesStatus,
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
    # Rows for people who asked this group to erase them: never imported again.
    skipped_erased: int = 0
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
            "skipped_erased": self.skipped_erased,
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


def _field_problem(values: dict[str, str]) -> str | None:
    for name, value in values.items():
        limit = FIELDS[name][1]
        if len(value) > limit:
            return str(
                _l("%(field)s is longer than %(n)d characters", field=FIELDS[name][0], n=limit)
            )
        if _MARKUP.search(value):
            return str(_l("%(field)s contains < > or control characters", field=FIELDS[name][0]))
    return None


_TAG_SPLIT = re.compile(r"[;,]")


def _clean_rows(
    rows: Iterable[tuple[int, list[str]]], mapping: dict[int, str], report: ImportReport
) -> Iterator[_Row]:
    # The hot loop of a million-row import: the usual row costs one join, one regex
    # search and one address check; the slower checks run only to name a problem.
    columns = [(i, name) for i, name in mapping.items() if name]
    width = max((i for i, _ in columns), default=0) + 1
    limits = [(name, FIELDS[name][1]) for _, name in columns]
    markup = _MARKUP.search
    for line, raw in rows:
        if len(raw) < width:
            if not "".join(raw).strip():
                continue  # blank lines are not errors
            raw = raw + [""] * (width - len(raw))
        values = {name: raw[i].strip() for i, name in columns}
        email = values.get("email", "")
        if not email:
            if "".join(raw).strip():
                report.reject(line, str(_l("no email address")))
            continue
        try:
            email = normalise_email(email)
        except InvalidEmail:
            report.reject(line, str(_l("“%(value)s” is not an email address", value=email[:80])))
            continue
        if markup("\n".join(values.values())) or any(
            len(values[name]) > limit for name, limit in limits
        ):
            report.reject(line, _field_problem(values) or "")
            continue
        tags: list[str] = []
        if values.get("tags"):
            tags = [t.strip() for t in _TAG_SPLIT.split(values["tags"]) if t.strip()]
            if any(len(t) > 60 for t in tags):
                report.reject(line, str(_l("a tag is longer than 60 characters")))
                continue
        details = {k: v for k, v in values.items() if v and k != "email" and k != "tags"}
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
    numbered = enumerate(reader, start=2)
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
    analysed = False
    for chunk in _chunks(rows, CHUNK):
        driver = _Driver()
        created_before = report.created
        _write_chunk(group, actor, chunk, report, tag_ids, source, consent_statement, driver)
        if driver.postgres and not analysed and report.created - created_before >= CHUNK // 2:
            # A big first chunk into a small table: fresh statistics keep the next
            # chunks' address lookups on the unique index instead of a scan.
            driver.one("ANALYZE supporters", ())
            analysed = True
        if after_chunk is not None:
            after_chunk(report, chunk[-1].line)
    audit.record(
        "supporters.imported", actor_id=actor.id, group_id=group.id, created=report.created,
        updated=report.updated, rejected=report.rejected_total,
        skipped_erased=report.skipped_erased,
    )  # fmt: skip
    return report


class _Driver:
    """The chunk's statements as plain driver SQL on the session's connection.

    Compiling ORM bulk statements cost more than the writes themselves; these are
    fixed strings. On SQLite rows go with the DBAPI's executemany; on PostgreSQL a
    chunk's rows go as column arrays in one statement (``unnest``), and address lists
    as one array parameter (``= ANY(%s)``: one plan, whatever the chunk's size).
    """

    def __init__(self) -> None:
        connection = db.session.connection()  # begins the session's transaction
        dialect = connection.dialect
        self.postgres = dialect.name == "postgresql"
        # The DBAPI cursor of that same connection, hence of that same transaction.
        self.cursor = connection.connection.cursor()
        column_type = Supporter.__table__.c.created_at.type
        stamp = column_type.dialect_impl(dialect).bind_processor(dialect)
        self.stamp = stamp or (lambda value: value)

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.postgres else sql

    def one(self, sql: str, params: tuple) -> None:
        self.cursor.execute(self._sql(sql), params)

    def rows(self, sql: str, params: tuple) -> list[tuple]:
        self.cursor.execute(self._sql(sql), params)
        return self.cursor.fetchall()

    def insert(self, head: str, rows: list[tuple], pg_types: tuple[str, ...]) -> None:
        """``INSERT INTO t (columns)`` of many rows: on PostgreSQL one statement over
        column arrays (``unnest``), on SQLite an executemany."""
        if not rows:
            return
        if self.postgres:
            arrays = ", ".join(f"%s::{kind}[]" for kind in pg_types)
            statement = f"{head} SELECT * FROM unnest({arrays})"  # noqa: S608 - fixed text
            self.cursor.execute(statement, [list(column) for column in zip(*rows)])
        else:
            marks = ", ".join("?" * len(pg_types))
            self.cursor.executemany(f"{head} VALUES ({marks})", rows)

    def many(self, sql: str, rows: list[tuple]) -> None:
        self.cursor.executemany(self._sql(sql), rows)

    def fill_in(self, rows: list[tuple]) -> None:
        """Known supporters' details, where the file has them (never blanking one)."""
        if not rows:
            return
        if self.postgres:
            self.cursor.execute(_UPDATE_PG, [list(column) for column in zip(*rows)])
        else:
            self.cursor.executemany(_UPDATE, rows)

    def among(self, column: str, values: list) -> tuple[str, tuple]:
        """``column`` is one of ``values``, as SQL and its parameters."""
        if self.postgres:
            return f"{column} = ANY(?)", (list(values),)
        return f"{column} IN ({', '.join('?' * len(values))})", tuple(values)


_FIND = "SELECT id, email, updates_status FROM supporters WHERE group_id = ? AND "
_UPDATE = (
    "UPDATE supporters SET first_name = COALESCE(NULLIF(?, ''), first_name), "
    "last_name = COALESCE(NULLIF(?, ''), last_name), phone = COALESCE(NULLIF(?, ''), phone), "
    "postcode = COALESCE(NULLIF(?, ''), postcode), updated_at = ? WHERE id = ?"
)
_UPDATE_PG = (
    "UPDATE supporters AS s SET first_name = COALESCE(NULLIF(v.f, ''), s.first_name), "
    "last_name = COALESCE(NULLIF(v.l, ''), s.last_name), "
    "phone = COALESCE(NULLIF(v.p, ''), s.phone), "
    "postcode = COALESCE(NULLIF(v.c, ''), s.postcode), updated_at = v.t "
    "FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::timestamptz[], "
    "%s::int[]) AS v(f, l, p, c, t, id) WHERE s.id = v.id"
)
_INSERT = (
    "INSERT INTO supporters (group_id, email, source, first_name, last_name, phone, postcode, "
    "updates_status, updates_confirmed_at, consent_version, created_at, updated_at)"
)
_INSERT_TYPES = ("int", "text", "text", "text", "text", "text", "text", "text", "timestamptz",
                 "int", "timestamptz", "timestamptz")  # fmt: skip
_SUBSCRIBE = (
    "UPDATE supporters SET updates_status = ?, updates_confirmed_at = ?, "
    "consent_version = consent_version + 1, updated_at = ? WHERE "
)
_CONSENT = (
    "INSERT INTO consent_records (supporter_id, group_id, purpose, action, method, wording, "
    "recorded_by_id, detail, created_at, updated_at)"
)
_CONSENT_TYPES = ("int", "int", "text", "text", "text", "text", "int", "text", "timestamptz",
                  "timestamptz")  # fmt: skip
_TAGGED = "SELECT supporter_id, tag_id FROM supporter_tags WHERE "
_TAG = "INSERT INTO supporter_tags (supporter_id, tag_id)"


def _write_chunk(
    group: Group,
    actor: User,
    chunk: list[_Row],
    report: ImportReport,
    tag_ids: dict[str, int],
    source: str,
    consent_statement: str,
    driver: _Driver,
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
    for email in erased_among(group.id, list(merged)):
        report.skipped_erased += sum(1 for row in chunk if row.email == email)
        del merged[email]
    if not merged:
        return
    emails = list(merged)
    where, params = driver.among("email", emails)
    # Fixed SQL text: values only ever travel as parameters.
    known = driver.rows(_FIND + where, (group.id, *params))
    ids: dict[str, int] = {email: supporter_id for supporter_id, email, _ in known}
    statuses: dict[str, str] = {email: status for _, email, status in known}
    suppressed = {
        email
        for (email,) in driver.rows(
            "SELECT email FROM suppressions WHERE group_id = ? AND " + where,  # noqa: S608
            (group.id, *params),
        )
    }
    now = driver.stamp(utcnow())
    subscribe = bool(consent_statement)
    subscribed = str(UpdatesStatus.SUBSCRIBED)

    # Known addresses: fill in details, never blank one.
    driver.fill_in([
        (d.get("first_name", ""), d.get("last_name", ""), "",
         d.get("postcode", ""), now, ids[email])
        for email in statuses for d in (merged[email].details,)
    ])  # fmt: skip
    # An address first met in an earlier chunk of this file was counted there.
    report.updated += sum(1 for email in statuses if not merged[email].repeat)

    # New addresses: subscribed as they are written when the organiser said how they agreed.
    new = [email for email in merged if email not in ids]
    joined = [email for email in new if subscribe and email not in suppressed]
    joining = set(joined)
    driver.insert(_INSERT, [
        (group.id, email, source[:120], d.get("first_name", ""), d.get("last_name", ""),
         "", d.get("postcode", ""),
         subscribed if email in joining else str(UpdatesStatus.NONE),
         now if email in joining else None, 1 if email in joining else 0, now, now)
        for email in new for d in (merged[email].details,)
    ], _INSERT_TYPES)  # fmt: skip
    report.created += len(new)
    # Known people who get updates from now on: never over an unsubscribe or a
    # suppression; the already subscribed stay as they are.
    rejoined = [
        email for email, status in statuses.items()
        if subscribe and email not in suppressed
        and status not in (UpdatesStatus.UNSUBSCRIBED, UpdatesStatus.SUBSCRIBED)
    ]  # fmt: skip
    if rejoined:
        where_ids, id_params = driver.among("id", [ids[e] for e in rejoined])
        driver.one(_SUBSCRIBE + where_ids, (subscribed, now, now, *id_params))
    needs_ids = [e for e in new if e in joining or merged[e].tags or merged[e].details.get("phone")]
    if needs_ids:
        where_new, new_params = driver.among("email", needs_ids)
        for supporter_id, email, _ in driver.rows(_FIND + where_new, (group.id, *new_params)):
            ids[email] = supporter_id
    if joined or rejoined:
        driver.insert(_CONSENT, [
            (ids[email], group.id, "group_updates", str(ConsentAction.GRANTED),
             str(ConsentMethod.IMPORT), consent_statement, actor.id, source[:200], now, now)
            for email in joined + rejoined
        ], _CONSENT_TYPES)  # fmt: skip
        report.subscribed += len(joined) + len(rejoined)
    _link_tags(group, merged, ids, set(statuses), tag_ids, driver)
    _seal_phones(merged, ids, driver)


def _seal_phones(merged: dict[str, _Row], ids: dict[str, int], driver: _Driver) -> None:
    """Phone numbers are stored sealed with their row id (table, column and row are the
    associated data), so they are written here, once every row of the chunk has an id."""
    sealed = [
        (Supporter.phone.seal(phone, ids[email]), ids[email])
        for email, row in merged.items()
        if (phone := row.details.get("phone"))
    ]
    if sealed:
        driver.many("UPDATE supporters SET phone = ? WHERE id = ?", sealed)


def _link_tags(
    group: Group,
    merged: dict[str, _Row],
    ids: dict[str, int],
    known: set[str],
    tag_ids: dict[str, int],
    driver: _Driver,
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
    # Only people already on the list can have tags already.
    old = [ids[email] for email in known if merged[email].tags]
    if old:
        where, params = driver.among("supporter_id", old)
        pairs -= set(map(tuple, driver.rows(_TAGGED + where, params)))
    driver.insert(_TAG, sorted(pairs), ("int", "int"))


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
