"""Supporter rules: one row per address per group, consent as data, double opt-in.

Services flush, never commit. Marketing mail may only go to ``marketing_recipients()``:
subscribed (confirmed), not erased, not suppressed by this group.
"""

from __future__ import annotations

import csv
import io
from typing import Any

import sqlalchemy as sa
from blinker import Namespace
from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from campaign.accounts.models import User
from campaign.core import audit
from campaign.core.addresses import normalise_email
from campaign.core.csvsafe import csv_safe
from campaign.core.erasure import ErasureSubject, erase_everywhere, export_everywhere
from campaign.core.links import external_url
from campaign.core.models import utcnow
from campaign.core.outbox import MailCategory, OutboxMessage, OutboxStatus, queue_email
from campaign.core.pagination import Page, paginate
from campaign.core.tokens import TokenError, fingerprint, make_token, read_token
from campaign.extensions import db
from campaign.groups.models import Group
from campaign.people.erasure import forget_erasure, is_erased_address
from campaign.people.models import (
    SUPPORTER_SEARCH_KEYS,
    ConsentAction,
    ConsentMethod,
    ConsentRecord,
    Supporter,
    Suppression,
    SuppressionReason,
    Tag,
    UpdatesStatus,
    supporter_tags,
)

# Capabilities above people add a section to an organiser's supporter page (mailing adds
# its delivery problems): a receiver gets the supporter and returns (template, context).
supporter_page_sections = Namespace().signal("people.supporter-page-sections")

# Links in campaign mail must keep working for a long time; unsubscribing is idempotent.
UNSUBSCRIBE_MAX_AGE = 5 * 365 * 24 * 3600
SUBSCRIBE_CONFIRM_MAX_AGE = 7 * 24 * 3600


class PeopleError(Exception):
    """A rule was broken; the message is safe to show."""


def updates_wording(group: Group) -> str:
    """The exact consent wording shown next to the (never pre-ticked) checkbox."""
    return str(
        _l(
            "Send me email updates from %(group)s about its campaigns and actions. "
            "I can unsubscribe at any time with the link in every email.",
            group=group.name,
        )
    )


def find_supporter(group: Group, email: str) -> Supporter | None:
    return db.session.scalar(
        select(Supporter).where(Supporter.group_id == group.id, Supporter.email == email)
    )


def get_supporter(group: Group, supporter_id: int) -> Supporter | None:
    """A supporter of this group only: ids from another group find nothing."""
    return db.session.scalar(
        select(Supporter).where(
            Supporter.id == supporter_id,
            Supporter.group_id == group.id,
            Supporter.erased_at.is_(None),
        )
    )


def upsert_supporter(
    group: Group,
    email: str,
    *,
    first_name: str = "",
    last_name: str = "",
    phone: str = "",
    postcode: str = "",
    source: str = "",
    replace: bool = False,
) -> tuple[Supporter, bool]:
    """Find or create the supporter for an address.

    Returns ``(supporter, created)``. A second sign-up finds the row, never duplicates
    it, and never blanks a detail the person gave before. From a public form
    (``replace=False``) a known person's details are only filled where empty: anyone
    can type anyone's address, so a stranger must not rename them or change their
    phone. An organiser (``replace=True``) may overwrite them with new non-empty values.
    """
    email = normalise_email(email)
    supporter = find_supporter(group, email)
    created = supporter is None
    if supporter is None:
        supporter = Supporter(group_id=group.id, email=email, source=source[:120])
        db.session.add(supporter)
    details = {"first_name": first_name, "last_name": last_name, "phone": phone}
    details["postcode"] = postcode.upper().strip()
    for name, value in details.items():
        value = value.strip()
        if value and (replace or created or not getattr(supporter, name)):
            setattr(supporter, name, value)
    db.session.flush()
    return supporter, created


def record_consent(
    supporter: Supporter,
    action: ConsentAction,
    method: ConsentMethod,
    *,
    wording: str = "",
    recorded_by: User | None = None,
    detail: str = "",
) -> ConsentRecord:
    record = ConsentRecord(
        supporter_id=supporter.id,
        group_id=supporter.group_id,
        action=action,
        method=method,
        wording=wording,
        recorded_by_id=recorded_by.id if recorded_by else None,
        detail=detail[:200],
    )
    db.session.add(record)
    supporter.consent_version += 1
    return record


def is_suppressed(group_id: int, email: str) -> bool:
    return (
        db.session.scalar(
            select(Suppression.id).where(
                Suppression.group_id == group_id, Suppression.email == email
            )
        )
        is not None
    )


# Service mail (about something the person asked for: their place at an action, their
# account) is not marketing: unsubscribing from updates, or a complaint about a campaign
# email (which unsubscribes), does not stop it. A hard bounce (the mailbox is gone) and
# a manual block (an organiser's decision, or an erasure request) still do.
SERVICE_MAIL_BLOCKED_BY = (SuppressionReason.HARD_BOUNCE, SuppressionReason.MANUAL)


def blocks_service_mail(group_id: int, email: str) -> bool:
    """Whether the group may not send service mail to this address (see above)."""
    return (
        db.session.scalar(
            select(Suppression.id).where(
                Suppression.group_id == group_id,
                Suppression.email == email.lower(),
                Suppression.reason.in_([reason.value for reason in SERVICE_MAIL_BLOCKED_BY]),
            )
        )
        is not None
    )


def suppress(group_id: int, email: str, reason: SuppressionReason, detail: str = "") -> None:
    """Add an address to the group's never-mail list (idempotent)."""
    if not is_suppressed(group_id, email):
        db.session.add(
            Suppression(group_id=group_id, email=email, reason=reason, detail=detail[:300])
        )
        db.session.flush()


# --- double opt-in ------------------------------------------------------------------------


def _subscription_token(supporter: Supporter) -> str:
    return make_token(
        "subscribe",
        {"s": supporter.id, "f": fingerprint(supporter.email, supporter.consent_version)},
    )


def request_subscription(
    group: Group, email: str, *, first_name: str = "", source: str = "subscribe-form"
) -> Supporter:
    """A visitor asks for the group's updates: record the consent and send one link.

    Nothing marketing is sent before the link is clicked. The confirmation mail holds
    no text the visitor typed, and each address gets only a few such mails a day.
    """
    supporter, _ = upsert_supporter(group, email, first_name=first_name, source=source)
    if supporter.updates_status == UpdatesStatus.SUBSCRIBED and not _lifted_by_confirming(
        supporter
    ):
        return supporter
    supporter.updates_status = UpdatesStatus.PENDING
    record_consent(
        supporter, ConsentAction.GRANTED, ConsentMethod.FORM, wording=updates_wording(group)
    )
    db.session.flush()
    queue_email(
        supporter.email,
        "subscribe_confirm",
        category=MailCategory.STRANGER,
        group_id=group.id,
        group=group,
        confirm_url=external_url(
            "people.confirm_subscription", token=_subscription_token(supporter)
        ),
    )
    return supporter


def check_subscription_token(token: str) -> Supporter:
    data = read_token("subscribe", token, SUBSCRIBE_CONFIRM_MAX_AGE)
    supporter = db.session.get(Supporter, data.get("s"))
    if supporter is None or supporter.erased_at is not None:
        raise TokenError("invalid")
    if data.get("f") != fingerprint(supporter.email, supporter.consent_version):
        raise TokenError("used")
    return supporter


def confirm_subscription(token: str) -> Supporter:
    """The person clicked the link and pressed the button: now they are subscribed."""
    supporter = check_subscription_token(token)
    # New consent from the owner of the address (the link proves it): if they once asked
    # to be erased, imports and organisers may now add them again like anyone else.
    forget_erasure(supporter.group_id, supporter.email)
    supporter.updates_status = UpdatesStatus.SUBSCRIBED
    supporter.updates_confirmed_at = utcnow()
    record_consent(supporter, ConsentAction.CONFIRMED, ConsentMethod.EMAIL_LINK)
    db.session.execute(sa.delete(Suppression).where(_lifted_by_confirming_clause(supporter)))
    return supporter


# A fresh opt-in confirmed by the link lifts an earlier unsubscribe, and a bounce or a spam
# complaint too: the click proves the mailbox works again and that its owner wants the mail.
# An organiser's do-not-mail entry and an erasure stay.
_LIFTED_BY_CONFIRMATION = (
    SuppressionReason.UNSUBSCRIBED,
    SuppressionReason.HARD_BOUNCE,
    SuppressionReason.COMPLAINT,
)


def _lifted_by_confirming_clause(supporter: Supporter) -> sa.ColumnElement[bool]:
    return sa.and_(
        Suppression.group_id == supporter.group_id,
        Suppression.email == supporter.email,
        Suppression.reason.in_(_LIFTED_BY_CONFIRMATION),
    )


def _lifted_by_confirming(supporter: Supporter) -> bool:
    """Whether a confirmed subscription would take them off the do-not-mail list (so a
    subscribed person whose mail bounced can ask for the confirmation link again)."""
    return (
        db.session.scalar(
            select(Suppression.id).where(_lifted_by_confirming_clause(supporter)).limit(1)
        )
        is not None
    )


# --- unsubscribe ------------------------------------------------------------------------------


def unsubscribe_token(supporter: Supporter) -> str:
    return make_token("unsubscribe", {"s": supporter.id, "g": supporter.group_id})


def supporter_from_unsubscribe_token(token: str) -> Supporter:
    data = read_token("unsubscribe", token, UNSUBSCRIBE_MAX_AGE)
    supporter = db.session.get(Supporter, data.get("s"))
    if supporter is None or supporter.group_id != data.get("g"):
        raise TokenError("invalid")
    return supporter


def unsubscribe(supporter: Supporter, method: ConsentMethod, detail: str = "") -> Supporter:
    """Stop the group's updates for good (idempotent): status, history, suppression."""
    if supporter.updates_status != UpdatesStatus.UNSUBSCRIBED:
        supporter.updates_status = UpdatesStatus.UNSUBSCRIBED
        record_consent(supporter, ConsentAction.WITHDRAWN, method, detail=detail)
    suppress(supporter.group_id, supporter.email, SuppressionReason.UNSUBSCRIBED, detail)
    # Campaign mail to them still waiting in the outbox (a big send, a retry) is not sent;
    # mail they asked for (transactional) is untouched.
    db.session.execute(
        sa.update(OutboxMessage)
        .where(
            OutboxMessage.supporter_id == supporter.id,
            OutboxMessage.category == MailCategory.MARKETING,
            OutboxMessage.status == OutboxStatus.QUEUED,
        )
        .values(status=OutboxStatus.SKIPPED, last_error="unsubscribed before delivery")
        .execution_options(synchronize_session=False)
    )
    return supporter


# --- who may get marketing mail ----------------------------------------------------------------


def marketing_recipients(group: Group, segment: dict[str, Any] | None = None) -> sa.Select:
    """Supporters a campaign email may go to: confirmed, not erased, not suppressed.

    ``segment`` narrows it: ``{"kind": "subscribers"}`` (all of them) or
    ``{"kind": "tag", "tag_id": N}``.
    """
    suppressed = select(Suppression.email).where(Suppression.group_id == group.id)
    query = select(Supporter).where(
        Supporter.group_id == group.id,
        Supporter.updates_status == UpdatesStatus.SUBSCRIBED,
        Supporter.erased_at.is_(None),
        Supporter.email.not_in(suppressed),
    )
    segment = segment or {"kind": "subscribers"}
    if segment.get("kind") == "tag":
        tag = db.session.scalar(
            select(Tag).where(Tag.id == segment.get("tag_id"), Tag.group_id == group.id)
        )
        if tag is None:
            raise PeopleError(_l("That tag does not exist in this group."))
        query = query.where(Supporter.tags.contains(tag))
    elif segment.get("kind") != "subscribers":
        raise PeopleError(_l("Unknown list."))
    return query.order_by(Supporter.id)


def count_recipients(group: Group, segment: dict[str, Any] | None = None) -> int:
    query = marketing_recipients(group, segment).order_by(None)
    return db.session.scalar(select(sa.func.count()).select_from(query.subquery())) or 0


# --- privacy: export and erasure -------------------------------------------------------------


def _subject(supporter: Supporter, email: str | None = None) -> ErasureSubject:
    return ErasureSubject(
        group_id=supporter.group_id, supporter_id=supporter.id, email=email or supporter.email
    )


def export_supporter(supporter: Supporter) -> dict[str, Any]:
    """Everything this group holds about one supporter, for a subject access request:
    what every capability registered with ``core.erasure`` holds (sign-ups, mail...)."""
    db.session.flush()
    return export_everywhere(_subject(supporter))


def erase_supporter(actor: User | None, supporter: Supporter) -> None:
    """Remove the person's data from every capability but keep anonymous counts.

    ``actor`` is the organiser who did it, or None when the person asked themself
    through the emailed confirmation link (which proves the address is theirs).

    Every participant of ``core.erasure`` scrubs its own rows (the supporter row stays,
    without identity; sign-ups are unlinked and scrubbed; mail loses address, content
    and error text). The address is then known only as a keyed hash, so imports and
    organisers cannot add it back, while the person may sign up again themself. The
    audit row says that it happened and who asked, never the person's IP address.
    """
    db.session.flush()
    erase_everywhere(_subject(supporter))
    db.session.refresh(supporter)
    db.session.expire(supporter, ["consents", "tags"])
    record_consent(supporter, ConsentAction.WITHDRAWN, ConsentMethod.ERASURE)
    audit.record(
        "supporter.erased",
        actor_id=actor.id if actor else None,
        group_id=supporter.group_id,
        keep_ip=actor is not None,
        supporter=supporter.id,
        by="organiser" if actor else "the person, from an emailed link",
    )


# --- organisers' people pages ---------------------------------------------------------------
#
# Everything below takes the group the view loaded with ``load_group`` and only ever
# touches that group's rows. Erased supporters stay in the table (so counts of how many
# people a group has reached stay honest) but are left out of every list and export.

# Which status wins when two rows for one person are merged: an unsubscribe is never
# undone by a merge, and a confirmed subscription is not downgraded to "pending".
_STATUS_STRICTNESS = {
    UpdatesStatus.NONE: 0,
    UpdatesStatus.PENDING: 1,
    UpdatesStatus.SUBSCRIBED: 2,
    UpdatesStatus.UNSUBSCRIBED: 3,
}
MAX_TAGS_PER_SUPPORTER = 20
ERASED_ADDRESS_MESSAGE = _l(
    "The person with this address asked the group to erase their data, so it cannot be "
    "added again by an organiser or an import. They can sign up again themselves through "
    "the group's public pages."
)
TAG_MAX_LENGTH = 60
_CSV_BATCH = 1000


class SupporterFieldError(PeopleError):
    """A rule about one field of the supporter form; ``field`` says which."""

    def __init__(self, field: str, message: object) -> None:
        super().__init__(message)
        self.field = field


def parse_tag_names(text: str) -> list[str]:
    """Comma-separated tag names, trimmed, blanks and repeats (ignoring case) dropped."""
    names: list[str] = []
    seen: set[str] = set()
    for raw in (text or "").split(","):
        name = " ".join(raw.split())
        if name and name.casefold() not in seen:
            seen.add(name.casefold())
            names.append(name)
    return names


def group_tags(group: Group) -> list[Tag]:
    """The group's tags, for the filter and the forms."""
    return list(db.session.scalars(select(Tag).where(Tag.group_id == group.id).order_by(Tag.name)))


def get_tag(group: Group, tag_id: int) -> Tag | None:
    """A tag of this group only: ids from another group find nothing."""
    return db.session.scalar(select(Tag).where(Tag.id == tag_id, Tag.group_id == group.id))


def tags_named(group: Group, names: list[str]) -> list[Tag]:
    """The group's tags with these names (matched ignoring case), created when missing."""
    tags: list[Tag] = []
    for name in names:
        name = name[:TAG_MAX_LENGTH]
        tag = db.session.scalar(
            select(Tag).where(Tag.group_id == group.id, sa.func.lower(Tag.name) == name.lower())
        )
        if tag is None:
            tag = Tag(group_id=group.id, name=name)
            db.session.add(tag)
            db.session.flush()
        if tag not in tags:
            tags.append(tag)
    return tags


def _starts_with(key: sa.ColumnElement, prefix: str) -> sa.ColumnElement[bool]:
    """``key`` begins with ``prefix``, as a range scan on its index.

    PostgreSQL: LIKE 'prefix%' on a text_pattern_ops index (right in any collation);
    SQLite: ``prefix <= key < next`` in its binary order. ``%`` and ``_`` are literal.
    """
    if db.session.get_bind().dialect.name == "postgresql":
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return key.like(escaped + "%", escape="\\")
    last = ord(prefix[-1])
    if last >= 0x10FFFF:
        return key >= prefix
    return sa.and_(key >= prefix, key < prefix[:-1] + chr(last + 1))


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _search_words(search: str) -> list[str]:
    """The words, folded as the database's ``lower()`` folds the indexed values: SQLite's
    folds only A-Z (so "Ó'Brien" finds "Ó'Brien", as the old LIKE search did)."""
    words = search.split()[:5]
    if db.session.get_bind().dialect.name == "sqlite":
        return [word.translate(_ASCII_LOWER) for word in words]
    return [word.lower() for word in words]


def _word_matches(word: str, whole: str | None) -> sa.ColumnElement[bool]:
    terms = [_starts_with(key, word) for key in SUPPORTER_SEARCH_KEYS.values()]
    if whole is not None:
        terms.append(_starts_with(SUPPORTER_SEARCH_KEYS["postcode"], whole))
    return sa.or_(*terms)


def supporter_ids_query(
    group: Group, *, search: str = "", tag: Tag | None = None, status: str | None = None
) -> sa.Select:
    """The ids of the group's supporters (never erased ones) that the search and
    filters select, unordered.

    Search: each word begins (ignoring case) the first name, the last name, the address
    or the postcode; or the whole search begins the postcode ("e1 6" finds "E1 6AN").
    Each word is one multi-index lookup on the search indexes, which also hold
    ``erased_at``, so the ids come from the indexes alone; the words' ids are
    intersected. A search of 100,000 supporters costs about what a page of them does.
    """
    if tag is not None and tag.group_id != group.id:
        raise PeopleError(_l("That tag does not exist in this group."))
    base = [Supporter.group_id == group.id, Supporter.erased_at.is_(None)]
    words = _search_words(search)
    # "(every word matches) or (the whole search begins the postcode)" is the same as
    # "for every word: it matches, or the whole search begins the postcode".
    whole = "".join(words) if len(words) > 1 else None
    selects = [select(Supporter.id).where(*base, _word_matches(word, whole)) for word in words]
    if not selects:
        selects = [select(Supporter.id).where(*base)]
    query = selects[0] if len(selects) == 1 else sa.intersect(*selects)
    if tag is None and not status:
        return query if isinstance(query, sa.Select) else select(query.subquery().c.id)
    matched = query.subquery()
    narrowed = select(Supporter.id).where(Supporter.id.in_(select(matched.c.id)))
    if tag is not None:
        narrowed = narrowed.where(Supporter.tags.any(Tag.id == tag.id))
    if status:
        narrowed = narrowed.where(Supporter.updates_status == UpdatesStatus(status))
    return narrowed


def supporters_query(
    group: Group, *, search: str = "", tag: Tag | None = None, status: str | None = None
) -> sa.Select:
    """The group's supporters that the search and filters select (see
    ``supporter_ids_query``), newest first."""
    query = select(Supporter).where(Supporter.group_id == group.id, Supporter.erased_at.is_(None))
    if search.split() or tag is not None or status:
        ids = supporter_ids_query(group, search=search, tag=tag, status=status)
        query = query.where(Supporter.id.in_(ids))
    return query.order_by(Supporter.id.desc())


def supporters_page(
    group: Group,
    *,
    search: str = "",
    tag: Tag | None = None,
    status: str | None = None,
    page: int,
    per_page: int,
    total: int | None = None,
) -> Page:
    """One page of ``supporters_query``, newest first, with each row's tags loaded.

    Counted and paged on ids alone (see ``supporter_ids_query``); only the page's rows
    are read. ``total`` skips the count when the caller knows it (the unfiltered list).
    """
    if not (search.split() or tag is not None or status):
        query = supporters_query(group).options(selectinload(Supporter.tags))
        return paginate(query, page, per_page, total=total)
    ids = supporter_ids_query(group, search=search, tag=tag, status=status).subquery()
    if total is None:
        total = db.session.scalar(select(sa.func.count()).select_from(ids)) or 0
    # On SQLite, sorted as plain numbers (``id + 0``): ordered by the column, it would
    # walk the group's index newest first instead of using the search indexes.
    # PostgreSQL's statistics choose between the two well by themselves.
    sqlite = db.session.get_bind().dialect.name == "sqlite"
    page_ids = (
        select(ids.c.id)
        .order_by((ids.c.id + 0).desc() if sqlite else ids.c.id.desc())
        .limit(per_page)
        .offset((page - 1) * per_page)
    )
    items = db.session.scalars(
        select(Supporter)
        .where(Supporter.id.in_(page_ids.scalar_subquery()))
        .order_by(Supporter.id.desc())
        .options(selectinload(Supporter.tags))
    ).all()
    return Page(items=list(items), page=page, per_page=per_page, total=total)


def supporter_counts(group: Group) -> dict[str, int]:
    """How many supporters the group has, by updates status, plus the erased rows.

    Keys: ``total`` (not erased), one per ``UpdatesStatus`` value, and ``erased``.
    """
    counts = {status.value: 0 for status in UpdatesStatus}
    # Two range scans of the covering index ix_supporters_group_counts.
    rows = db.session.execute(
        select(Supporter.updates_status, sa.func.count())
        .where(Supporter.group_id == group.id, Supporter.erased_at.is_(None))
        .group_by(Supporter.updates_status)
    )
    for status, count in rows:
        counts[status] = count
    counts["total"] = sum(counts[status.value] for status in UpdatesStatus)
    counts["erased"] = (
        db.session.scalar(
            select(sa.func.count()).where(
                Supporter.group_id == group.id, Supporter.erased_at.is_not(None)
            )
        )
        or 0
    )
    return counts


def record_in_person_consent(actor: User, group: Group, supporter: Supporter) -> bool:
    """An organiser records that the person agreed, face to face, to the group's updates.

    In-person consent counts as confirmed, with no confirmation email: double opt-in
    exists to prove that the owner of an address asked for the mail, and here the
    person told an organiser so themself, giving that address. The record keeps the
    wording they were shown and who recorded it, so the consent can be evidenced. As
    with a confirmed link, a fresh opt-in lifts an earlier unsubscribe from the
    suppression list, never a bounce, a complaint or an erasure.

    Returns False (and records nothing) when they already get the updates.
    """
    if supporter.updates_status == UpdatesStatus.SUBSCRIBED:
        return False
    supporter.updates_status = UpdatesStatus.SUBSCRIBED
    supporter.updates_confirmed_at = utcnow()
    record_consent(
        supporter,
        ConsentAction.GRANTED,
        ConsentMethod.IN_PERSON,
        wording=updates_wording(group),
        recorded_by=actor,
    )
    db.session.execute(
        sa.delete(Suppression).where(
            Suppression.group_id == group.id,
            Suppression.email == supporter.email,
            Suppression.reason == SuppressionReason.UNSUBSCRIBED,
        )
    )
    db.session.flush()
    db.session.expire(supporter, ["consents"])
    return True


def add_supporter(
    actor: User,
    group: Group,
    *,
    email: str,
    first_name: str = "",
    last_name: str = "",
    phone: str = "",
    postcode: str = "",
    tag_names: list[str] | None = None,
    agreed_in_person: bool = False,
) -> tuple[Supporter, bool]:
    """An organiser adds a supporter by hand; an address already known updates its row.

    Returns ``(supporter, created)``. Tags are added to the ones the row has. Consent is
    recorded only when the organiser ticked that the person agreed in person.
    """
    tag_names = tag_names or []
    if is_erased_address(group.id, normalise_email(email)):
        raise SupporterFieldError("email", ERASED_ADDRESS_MESSAGE)
    existing = find_supporter(group, normalise_email(email))
    if existing is not None and existing.erased_at is not None:
        # Only an address typed exactly as an erased row's placeholder gets here.
        raise SupporterFieldError("email", _l("That address cannot be used."))
    known = {tag.name.casefold() for tag in existing.tags} if existing else set()
    if len(known | {name.casefold() for name in tag_names}) > MAX_TAGS_PER_SUPPORTER:
        raise SupporterFieldError(
            "tags", _l("A supporter can have at most %(n)d tags.", n=MAX_TAGS_PER_SUPPORTER)
        )
    supporter, created = upsert_supporter(
        group,
        email,
        first_name=first_name,
        last_name=last_name,
        phone=phone,
        postcode=postcode,
        source="organiser",
        replace=True,
    )
    for tag in tags_named(group, tag_names):
        if tag not in supporter.tags:
            supporter.tags.append(tag)
    if agreed_in_person:
        record_in_person_consent(actor, group, supporter)
    audit.record(
        "supporter.added" if created else "supporter.updated",
        actor_id=actor.id,
        group_id=group.id,
        supporter=supporter.id,
    )
    db.session.flush()
    return supporter, created


def update_supporter(
    actor: User,
    group: Group,
    supporter: Supporter,
    *,
    email: str,
    first_name: str,
    last_name: str,
    phone: str,
    postcode: str,
    tag_names: list[str],
    agreed_in_person: bool = False,
) -> Supporter:
    """An organiser corrects a supporter's details and tags (blank fields are cleared).

    An address stays one row: changing it to an address another supporter of the group
    has is refused; the organiser merges the two rows instead.
    """
    if supporter.group_id != group.id or supporter.erased_at is not None:
        raise PeopleError(_l("That supporter does not exist in this group."))
    if len(tag_names) > MAX_TAGS_PER_SUPPORTER:
        raise SupporterFieldError(
            "tags", _l("A supporter can have at most %(n)d tags.", n=MAX_TAGS_PER_SUPPORTER)
        )
    new_email = normalise_email(email)
    if new_email != supporter.email:
        if is_erased_address(group.id, new_email):
            raise SupporterFieldError("email", ERASED_ADDRESS_MESSAGE)
        if find_supporter(group, new_email) is not None:
            raise SupporterFieldError(
                "email",
                _l(
                    "Another supporter of this group already has that address. To combine "
                    "them into one, use “Merge another supporter into this one” below."
                ),
            )
        supporter.email = new_email
        if supporter.updates_status == UpdatesStatus.UNSUBSCRIBED:
            # They said no: keep the new address off the group's mail as well.
            suppress(group.id, new_email, SuppressionReason.UNSUBSCRIBED, "address changed")
        audit.record(
            "supporter.email_changed", actor_id=actor.id, group_id=group.id, supporter=supporter.id
        )
    supporter.first_name = first_name.strip()
    supporter.last_name = last_name.strip()
    supporter.phone = phone.strip()
    supporter.postcode = postcode.upper().strip()
    supporter.tags = tags_named(group, tag_names)
    if agreed_in_person:
        record_in_person_consent(actor, group, supporter)
    db.session.flush()
    return supporter


def consent_history(supporter: Supporter) -> list[tuple[ConsentRecord, str | None]]:
    """The supporter's consent records, oldest first, each with who recorded it (if anyone)."""
    rows = db.session.execute(
        select(ConsentRecord, User.display_name)
        .outerjoin(User, ConsentRecord.recorded_by_id == User.id)
        .where(
            ConsentRecord.supporter_id == supporter.id,
            ConsentRecord.group_id == supporter.group_id,
        )
        .order_by(ConsentRecord.id)
    )
    return [(record, name) for record, name in rows]


def unsubscribe_by_organiser(actor: User, supporter: Supporter) -> bool:
    """An organiser stops a supporter's updates (they asked by phone, letter, in person).

    Returns False when they were already unsubscribed (the suppression is still made sure of).
    """
    already = supporter.updates_status == UpdatesStatus.UNSUBSCRIBED
    unsubscribe(supporter, ConsentMethod.ORGANISER)
    if not already:
        db.session.flush()
        record = db.session.scalar(
            select(ConsentRecord)
            .where(ConsentRecord.supporter_id == supporter.id)
            .order_by(ConsentRecord.id.desc())
            .limit(1)
        )
        if record is not None:
            record.recorded_by_id = actor.id
        audit.record(
            "supporter.unsubscribed",
            actor_id=actor.id,
            group_id=supporter.group_id,
            supporter=supporter.id,
        )
    db.session.flush()
    db.session.expire(supporter, ["consents"])
    return not already


def export_supporter_data(actor: User, supporter: Supporter) -> dict[str, Any]:
    """``export_supporter`` for an organiser answering a subject access request, audited."""
    audit.record(
        "supporter.data_exported",
        actor_id=actor.id,
        group_id=supporter.group_id,
        supporter=supporter.id,
    )
    return export_supporter(supporter)


CSV_COLUMNS = [
    "email",
    "first_name",
    "last_name",
    "phone",
    "postcode",
    "tags",
    "updates_status",
    "source",
    "added",
]


def supporters_csv(actor: User, group: Group, query: sa.Select) -> tuple[str, int]:
    """The rows of a ``supporters_query`` as CSV text, safe to open in a spreadsheet.

    Returns ``(text, row_count)`` and audits the export (the count, never the search).
    Plain columns are read in batches (no ORM objects), with one query for the tags of
    each batch, so a list of 100,000 supporters takes seconds, not minutes.
    """
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    columns = query.with_only_columns(
        Supporter.id,
        Supporter.email,
        Supporter.first_name,
        Supporter.last_name,
        Supporter.phone_sealed,
        Supporter.postcode,
        Supporter.updates_status,
        Supporter.source,
        Supporter.created_at,
        # The query already keeps to the group and leaves erased rows out; say it again.
    ).where(Supporter.group_id == group.id, Supporter.erased_at.is_(None))
    count = 0
    result = db.session.execute(columns.execution_options(yield_per=_CSV_BATCH))
    for batch in result.partitions():
        tags: dict[int, list[str]] = {}
        for supporter_id, name in db.session.execute(
            select(supporter_tags.c.supporter_id, Tag.name)
            .join(Tag, Tag.id == supporter_tags.c.tag_id)
            .where(
                supporter_tags.c.supporter_id.in_([row.id for row in batch]),
                Tag.group_id == group.id,
            )
            .order_by(Tag.name)
        ):
            tags.setdefault(supporter_id, []).append(name)
        for row in batch:
            writer.writerow(
                [
                    csv_safe(row.email),
                    csv_safe(row.first_name),
                    csv_safe(row.last_name),
                    csv_safe(Supporter.phone.open(row.phone_sealed, row.id)),
                    csv_safe(row.postcode),
                    csv_safe(";".join(tags.get(row.id, []))),
                    row.updates_status,
                    csv_safe(row.source),
                    row.created_at.date().isoformat(),
                ]
            )
        count += len(batch)
    audit.record("supporter.exported_csv", actor_id=actor.id, group_id=group.id, count=count)
    return out.getvalue(), count


def merge_supporters(actor: User, group: Group, target: Supporter, other: Supporter) -> Supporter:
    """Fold ``other`` into ``target`` (one person, two rows) and delete ``other``.

    The target keeps its address and its details; empty ones are filled from the other
    row. Tags and the whole consent history move over. The stricter updates status wins
    (unsubscribed > subscribed > pending > none), so a merge never undoes an unsubscribe,
    and links emailed for either row's old state stop working.
    """
    for supporter in (target, other):
        if supporter.group_id != group.id or supporter.erased_at is not None:
            raise PeopleError(_l("That supporter does not exist in this group."))
    if target.id == other.id:
        raise PeopleError(_l("That is this supporter's own address."))

    for name in ("first_name", "last_name", "phone", "postcode", "source"):
        if not getattr(target, name) and getattr(other, name):
            setattr(target, name, getattr(other, name))
    for tag in other.tags:
        if tag not in target.tags:
            target.tags.append(tag)

    target_rank = _STATUS_STRICTNESS[UpdatesStatus(target.updates_status)]
    other_rank = _STATUS_STRICTNESS[UpdatesStatus(other.updates_status)]
    if other_rank > target_rank:
        target.updates_status = other.updates_status
    if target.updates_status == UpdatesStatus.SUBSCRIBED and target.updates_confirmed_at is None:
        target.updates_confirmed_at = other.updates_confirmed_at
    if target.updates_status == UpdatesStatus.UNSUBSCRIBED:
        suppress(group.id, target.email, SuppressionReason.UNSUBSCRIBED, "merged")
    target.created_at = min(target.created_at, other.created_at)
    target.consent_version = max(target.consent_version, other.consent_version) + 1

    db.session.execute(
        sa.update(ConsentRecord)
        .where(ConsentRecord.supporter_id == other.id, ConsentRecord.group_id == group.id)
        .values(supporter_id=target.id)
    )
    # Delivery history of the group's mail follows the person too.
    db.session.execute(
        sa.update(OutboxMessage)
        .where(OutboxMessage.supporter_id == other.id, OutboxMessage.group_id == group.id)
        .values(supporter_id=target.id)
    )
    db.session.expire(target, ["consents"])
    db.session.expire(other, ["consents"])
    other_id = other.id
    db.session.delete(other)
    db.session.flush()
    audit.record(
        "supporter.merged",
        actor_id=actor.id,
        group_id=group.id,
        supporter=target.id,
        merged=other_id,
    )
    return target


def is_blocked(supporter: Supporter) -> bool:
    """Whether the group's do-not-mail list stops this supporter's updates anyway."""
    return is_suppressed(supporter.group_id, supporter.email)
