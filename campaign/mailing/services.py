"""Email to a group's lists: drafts, segments, merge fields, sending, reports, unsubscribe.

Services flush, never commit: the view, task or CLI command that calls them owns the
transaction. Campaign mail only ever goes to ``people.services.marketing_recipients()``
(subscribed, not erased, not suppressed), one outbox row per recipient, all queued in
the transaction that marks the mailing as sending.

The organiser's text is never evaluated as a template. Merge fields are two exact
tokens replaced with ``str.replace``: the Markdown is rendered once per mailing with
inert placeholders, and each recipient's copy only swaps those placeholders for their
(HTML-escaped, in the HTML part) first name and unsubscribe link.
"""

from __future__ import annotations

import re
import secrets
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import formataddr, parseaddr
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from flask import current_app, render_template
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from markupsafe import Markup, escape
from sqlalchemy import select

from campaign.accounts.models import User
from campaign.core import audit
from campaign.core.links import external_url
from campaign.core.models import utcnow
from campaign.core.outbox import (
    MailCategory,
    OutboxMessage,
    OutboxStatus,
    PreparedEmail,
    queue_email,
    queue_prepared,
)
from campaign.core.text import markdown_to_text, render_markdown
from campaign.core.tokens import TokenError, fingerprint, make_token, read_token
from campaign.extensions import db
from campaign.groups.models import Group
from campaign.mailing.models import Mailing, MailingStatus
from campaign.people.models import (
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
from campaign.people.services import (
    PeopleError,
    count_recipients,
    erase_supporter,
    export_supporter,
    marketing_recipients,
    supporter_from_unsubscribe_token,
    unsubscribe,
    unsubscribe_token,
)

FIRST_NAME_FIELD = "{{first_name}}"
UNSUBSCRIBE_URL_FIELD = "{{unsubscribe_url}}"
MERGE_FIELDS = (FIRST_NAME_FIELD, UNSUBSCRIBE_URL_FIELD)
SAMPLE_FIRST_NAME = "Sam"
# Anything that looks like a merge field, to tell organisers about ones we do not know.
_MERGE_LIKE = re.compile(r"\{\{.{0,60}?\}\}", re.S)
SUBJECT_MAX = 200
BODY_MAX = 50_000
SCHEDULE_MAX_AHEAD = timedelta(days=366)
# Recipients queued per transaction when a send is queued as a background job.
QUEUE_CHUNK = 2000
TEST_PREFIX = "[Test] "
# The token in the links of previews and test sends: it unsubscribes nobody.
EXAMPLE_TOKEN = "example"  # noqa: S105 - not a secret


class MailingError(Exception):
    """A rule was broken; the message is safe to show."""


# --- merge fields ----------------------------------------------------------------------------


def unknown_merge_fields(text: str) -> list[str]:
    """Tokens in ``{{ }}`` that are not exactly one of our merge fields, in order of use."""
    found: list[str] = []
    for match in _MERGE_LIKE.finditer(text or ""):
        token = match.group(0)
        if token not in MERGE_FIELDS and token not in found:
            found.append(token)
    return found


def merge(text: str, *, first_name: str, unsubscribe_url: str) -> str:
    """Fill the two merge fields in plain text. Nothing else in the text is interpreted."""
    name = " ".join((first_name or "").split()) or _("friend")
    return text.replace(FIRST_NAME_FIELD, name).replace(UNSUBSCRIBE_URL_FIELD, unsubscribe_url)


@dataclass
class RenderedMailing:
    """A mailing rendered once, with placeholders where each recipient's details go."""

    subject: str
    text: str
    html: str
    html_content: str  # the part of ``html`` inside the layout, for the preview page
    name_placeholder: str
    url_placeholder: str

    def personalise(self, *, first_name: str, unsubscribe_url: str) -> tuple[str, str, str]:
        """(text, html, html_content) for one recipient."""
        name = " ".join((first_name or "").split()) or _("friend")
        text = self.text.replace(self.name_placeholder, name).replace(
            self.url_placeholder, unsubscribe_url
        )
        safe_name, safe_url = str(escape(name)), str(escape(unsubscribe_url))

        def fill(html: str) -> str:
            return html.replace(self.name_placeholder, safe_name).replace(
                self.url_placeholder, safe_url
            )

        return text, fill(self.html), fill(self.html_content)


def render_mailing(group: Group, mailing: Mailing) -> RenderedMailing:
    """Render the subject, text and HTML once, leaving placeholders for the merge fields.

    Placeholders are random letters and digits: Markdown leaves them alone and the
    sanitiser keeps them, wherever the organiser put the merge field (text or link).
    """
    stamp = secrets.token_hex(8)
    name_ph, url_ph = f"mergefn{stamp}x", f"mergeuu{stamp}x"
    source = mailing.body_markdown.replace(FIRST_NAME_FIELD, name_ph).replace(
        UNSUBSCRIBE_URL_FIELD, url_ph
    )
    context: dict[str, Any] = {
        "group": group,
        "site_name": current_app.config["SITE_NAME"],
        "unsubscribe_url": url_ph,
        "subject": mailing.subject,
    }
    body_html = render_markdown(source)
    html_content = render_template("mailing/_email_content.html", body_html=body_html, **context)
    html = render_template("email/mailing.html", body_html=body_html, **context)
    text = render_template("email/mailing.txt", body_text=markdown_to_text(source), **context)
    return RenderedMailing(
        subject=" ".join(mailing.subject.split()),
        text=text,
        html=html,
        html_content=html_content,
        name_placeholder=name_ph,
        url_placeholder=url_ph,
    )


# --- links and headers ------------------------------------------------------------------------


def unsubscribe_url(token: str) -> str:
    """The public unsubscribe page for a token, as an absolute URL."""
    return external_url("mailing.unsubscribe", token=token)


def _sender_domain() -> str:
    address = parseaddr(current_app.config["MAIL_DEFAULT_SENDER"])[1]
    return address.rpartition("@")[2] or "localhost"


def list_id(group: Group) -> str:
    """RFC 2919 List-Id: an optional phrase, then <slug.host> (host of BASE_URL).

    The phrase is the group's name in plain ASCII letters, digits, spaces and hyphens
    ("Grŵp Iechyd (Riverside)" → "Grwp Iechyd Riverside"), so it needs no quoting and
    the email package never encodes the header: an encoded <list-id> is not a List-Id.
    """
    host = (urlsplit(current_app.config["BASE_URL"]).hostname or "localhost").rstrip(".")
    ascii_name = unicodedata.normalize("NFKD", group.name).encode("ascii", "ignore").decode()
    phrase = " ".join(re.sub(r"[^A-Za-z0-9\s-]", " ", ascii_name).split())
    identifier = f"<{group.slug}.{host}>"
    return f"{phrase} {identifier}" if phrase else identifier


def list_headers(group: Group, token: str, url: str) -> dict[str, str]:
    """The per-recipient headers of a campaign email (RFC 2369, 2919, 8058)."""
    headers = {
        "List-Unsubscribe": (
            f"<{url}>, <mailto:unsubscribe@{_sender_domain()}?subject=unsubscribe-{token}>"
        ),
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        "List-Id": list_id(group),
    }
    if group.contact_email:
        headers["Reply-To"] = formataddr((group.name, group.contact_email), charset="utf-8")
    return headers


# --- segments ----------------------------------------------------------------------------------

SUBSCRIBERS: dict[str, Any] = {"kind": "subscribers"}


@dataclass
class SegmentChoice:
    value: str
    label: str
    count: int


def segment_value(segment: dict[str, Any] | None) -> str:
    """The form value for a stored segment: ``subscribers`` or ``tag:<id>``."""
    segment = segment or SUBSCRIBERS
    if segment.get("kind") == "tag":
        return f"tag:{segment.get('tag_id')}"
    return "subscribers"


def _tag_of(group: Group, tag_id: object) -> Tag | None:
    if not isinstance(tag_id, int):
        return None
    return db.session.scalar(select(Tag).where(Tag.id == tag_id, Tag.group_id == group.id))


def segment_from_value(group: Group, value: str) -> dict[str, Any]:
    """The stored segment for a form value; only this group's tags are accepted."""
    if value == "subscribers":
        return dict(SUBSCRIBERS)
    kind, _sep, raw_id = (value or "").partition(":")
    tag = _tag_of(group, int(raw_id)) if kind == "tag" and raw_id.isdigit() else None
    if tag is None:
        raise MailingError(_l("Choose one of the lists shown."))
    return {"kind": "tag", "tag_id": tag.id}


def segment_label(group: Group, segment: dict[str, Any] | None) -> str:
    """How a segment is described to organisers."""
    segment = segment or SUBSCRIBERS
    if segment.get("kind") == "tag":
        tag = _tag_of(group, segment.get("tag_id"))
        if tag is None:
            return _("Subscribers with a tag that no longer exists")
        return _("Subscribers tagged “%(tag)s”", tag=tag.name)
    return _("All subscribers")


def recipient_count(group: Group, segment: dict[str, Any] | None) -> int:
    """How many people a segment would reach now (0 when its tag is gone)."""
    try:
        return count_recipients(group, segment or SUBSCRIBERS)
    except PeopleError:
        return 0


def segment_choices(group: Group) -> list[SegmentChoice]:
    """Every segment of the group with how many people it would reach now."""
    choices = [SegmentChoice("subscribers", _("All subscribers"), recipient_count(group, None))]
    tags = db.session.scalars(select(Tag).where(Tag.group_id == group.id).order_by(Tag.name))
    eligible = marketing_recipients(group, SUBSCRIBERS).order_by(None).subquery()
    counts: dict[int, int] = {
        tag_id: number
        for tag_id, number in db.session.execute(
            select(supporter_tags.c.tag_id, sa.func.count())
            .join(eligible, eligible.c.id == supporter_tags.c.supporter_id)
            .join(Tag, Tag.id == supporter_tags.c.tag_id)
            .where(Tag.group_id == group.id)
            .group_by(supporter_tags.c.tag_id)
        )
    }
    for tag in tags:
        choices.append(
            SegmentChoice(
                f"tag:{tag.id}",
                _("Subscribers tagged “%(tag)s”", tag=tag.name),
                counts.get(tag.id, 0),
            )
        )
    return choices


# --- drafts ------------------------------------------------------------------------------------


def mailings_query(group: Group) -> sa.Select:
    """The group's mailings, newest first."""
    return select(Mailing).where(Mailing.group_id == group.id).order_by(Mailing.id.desc())


def get_mailing(group: Group, mailing_id: int) -> Mailing | None:
    """A mailing of this group only: ids from another group find nothing."""
    return db.session.scalar(
        select(Mailing).where(Mailing.id == mailing_id, Mailing.group_id == group.id)
    )


def _check_content(subject: str, body: str) -> None:
    if not subject.strip() or len(subject) > SUBJECT_MAX:
        raise MailingError(_l("Write a subject of up to %(n)d characters.", n=SUBJECT_MAX))
    if not body.strip() or len(body) > BODY_MAX:
        raise MailingError(_l("Write a message of up to %(n)d characters.", n=BODY_MAX))
    unknown = unknown_merge_fields(body)
    if unknown:
        raise MailingError(
            _l(
                "%(field)s is not a merge field. Use exactly %(first)s or %(url)s.",
                field=unknown[0],
                first=FIRST_NAME_FIELD,
                url=UNSUBSCRIBE_URL_FIELD,
            )
        )


def create_draft(
    actor: User, group: Group, *, subject: str, body: str, segment: dict[str, Any]
) -> Mailing:
    """An organiser starts a mailing; it stays a draft until sent or scheduled."""
    _check_content(subject, body)
    mailing = Mailing(
        group_id=group.id,
        author_id=actor.id,
        subject=subject.strip(),
        body_markdown=body,
        segment=dict(segment),
        status=MailingStatus.DRAFT,
        recipient_count=0,
    )
    db.session.add(mailing)
    db.session.flush()
    return mailing


def _require_draft(mailing: Mailing) -> None:
    if mailing.status != MailingStatus.DRAFT:
        raise MailingError(
            _l("Only a draft can be changed. This mailing has been sent or scheduled.")
        )


def update_draft(
    actor: User, mailing: Mailing, *, subject: str, body: str, segment: dict[str, Any]
) -> Mailing:
    """An organiser edits a draft (sent and scheduled mailings are not changed)."""
    _require_draft(mailing)
    _check_content(subject, body)
    mailing.subject = subject.strip()
    mailing.body_markdown = body
    mailing.segment = dict(segment)
    mailing.author_id = mailing.author_id or actor.id
    db.session.flush()
    return mailing


def delete_draft(actor: User, mailing: Mailing) -> None:
    """An organiser throws a draft away."""
    _require_draft(mailing)
    db.session.delete(mailing)
    db.session.flush()


# --- preview and test --------------------------------------------------------------------------


@dataclass
class Preview:
    subject: str
    html: Markup
    text: str
    count: int
    segment: str


def preview(group: Group, mailing: Mailing) -> Preview:
    """The mailing as a supporter would see it, with a sample name and sample link."""
    rendered = render_mailing(group, mailing)
    text, _html, content = rendered.personalise(
        first_name=SAMPLE_FIRST_NAME, unsubscribe_url=unsubscribe_url(EXAMPLE_TOKEN)
    )
    return Preview(
        subject=rendered.subject,
        html=Markup(content),  # noqa: S704 - sanitised Markdown and escaped fields
        text=text,
        count=recipient_count(group, mailing.segment),
        segment=segment_label(group, mailing.segment),
    )


def test_first_name(actor: User) -> str:
    """The name a test copy greets the organiser by: their own, never a supporter's.

    The first word of their account's display name, else the part of their address
    before the @ (``sam.jones@…`` → ``sam.jones``).
    """
    words = (actor.display_name or "").split()
    return words[0] if words else actor.email.partition("@")[0]


def send_test(actor: User, group: Group, mailing: Mailing) -> int:
    """Queue one copy to the organiser's own account address, marked as a test and
    personalised with the organiser's own details."""
    rendered = render_mailing(group, mailing)
    text, html, _content = rendered.personalise(
        first_name=test_first_name(actor), unsubscribe_url=unsubscribe_url(EXAMPLE_TOKEN)
    )
    return queue_prepared(
        [
            PreparedEmail(
                to=actor.email,
                subject=(TEST_PREFIX + rendered.subject)[:300],
                text_body=text,
                html_body=html,
            )
        ],
        template="mailing_test",
        category=MailCategory.TRANSACTIONAL,
        group_id=group.id,
        group_name=group.name,
        reply_to=group.contact_email or None,
    )


# --- sending -----------------------------------------------------------------------------------


def _claim(
    mailing: Mailing,
    from_statuses: tuple[MailingStatus, ...],
    to_status: MailingStatus = MailingStatus.SENDING,
) -> bool:
    """Move the mailing to ``to_status`` only if it is still in one of ``from_statuses``.

    One conditional UPDATE: of two requests (a double click, two schedulers), only one
    finds the row still unsent, so a mailing is queued at most once.
    """
    result = db.session.execute(
        sa.update(Mailing)
        .where(Mailing.id == mailing.id, Mailing.status.in_([s.value for s in from_statuses]))
        .values(status=to_status.value)
        .execution_options(synchronize_session=False)
    )
    db.session.refresh(mailing)
    return result.rowcount == 1


def _check_sendable(group: Group, mailing: Mailing) -> None:
    if not group.is_approved:
        raise MailingError(_l("You can email supporters once the group has been approved."))
    try:
        count_recipients(group, mailing.segment or SUBSCRIBERS)
    except PeopleError:
        raise MailingError(
            _l("The tag this mailing was for no longer exists. Choose another list.")
        ) from None
    _check_content(mailing.subject, mailing.body_markdown)


def _recipient_messages(
    group: Group, rendered: RenderedMailing, recipients: Iterable[Supporter]
) -> Iterator[PreparedEmail]:
    """Each recipient's own message: their first name and their own unsubscribe link."""
    url_template = unsubscribe_url("TOKENPLACEHOLDER")
    for supporter in recipients:
        token = unsubscribe_token(supporter)
        url = url_template.replace("TOKENPLACEHOLDER", token)
        text, html, _content = rendered.personalise(
            first_name=supporter.first_name, unsubscribe_url=url
        )
        yield PreparedEmail(
            to=supporter.email,
            subject=rendered.subject,
            text_body=text,
            html_body=html,
            headers=list_headers(group, token, url),
            supporter_id=supporter.id,
        )


def _queue_recipients(group: Group, mailing: Mailing) -> int:
    """Snapshot the segment now and queue one outbox row per recipient."""
    recipients = db.session.scalars(
        marketing_recipients(group, mailing.segment or SUBSCRIBERS)
    ).all()
    count = queue_prepared(
        _recipient_messages(group, render_mailing(group, mailing), recipients),
        template="mailing",
        category=MailCategory.MARKETING,
        group_id=group.id,
        group_name=group.name,
        mailing_id=mailing.id,
    )
    mailing.recipient_count = count
    mailing.queued_at = utcnow()
    db.session.flush()
    refresh_status(mailing)
    return count


def check_send_now(group: Group, mailing: Mailing) -> int:
    """Can the mailing be sent now? Returns how many it would reach; MailingError if not."""
    if mailing.group_id != group.id:
        raise MailingError(_l("That mailing does not exist in this group."))
    if mailing.status not in (MailingStatus.DRAFT, MailingStatus.SCHEDULED):
        raise MailingError(_l("This mailing has already been sent."))
    _check_sendable(group, mailing)
    count = recipient_count(group, mailing.segment)
    if count == 0:
        raise MailingError(_l("Nobody on that list can be emailed yet, so nothing was sent."))
    return count


def begin_send(actor: User, group: Group, mailing: Mailing) -> int:
    """Claim the mailing for sending now (QUEUEING); returns how many it will reach.

    The recipients are queued afterwards, chunk by chunk, by ``queue_next_recipients``
    (in a background job, see ``tasks.run_send_job``) and ``finish_queueing``.
    """
    count = check_send_now(group, mailing)
    if not _claim(mailing, (MailingStatus.DRAFT, MailingStatus.SCHEDULED), MailingStatus.QUEUEING):
        raise MailingError(_l("This mailing has already been sent."))
    mailing.recipient_count = 0
    audit.record(
        "mailing.sent", actor_id=actor.id, group_id=group.id, mailing=mailing.id, recipients=count
    )
    db.session.flush()
    return count


def queue_next_recipients(
    group: Group, mailing: Mailing, after_id: int, limit: int | None = None
) -> tuple[int, int]:
    """Queue the next ``limit`` recipients (by supporter id, after ``after_id``).

    Returns how many were queued and the last supporter id, to carry on from; the
    segment is read as it is now, chunk by chunk. Flushes.
    """
    recipients = db.session.scalars(
        marketing_recipients(group, mailing.segment or SUBSCRIBERS)
        .where(Supporter.id > after_id)
        .limit(limit or QUEUE_CHUNK)
    ).all()
    if not recipients:
        return 0, after_id
    count = queue_prepared(
        _recipient_messages(group, render_mailing(group, mailing), recipients),
        template="mailing",
        category=MailCategory.MARKETING,
        group_id=group.id,
        group_name=group.name,
        mailing_id=mailing.id,
    )
    mailing.recipient_count += count
    db.session.flush()
    return count, recipients[-1].id


def finish_queueing(mailing: Mailing) -> Mailing:
    """Every recipient is queued: the mailing is SENDING until the outbox has sent them."""
    mailing.status = MailingStatus.SENDING
    mailing.queued_at = utcnow()
    db.session.flush()
    return refresh_status(mailing)


def send_now(actor: User, group: Group, mailing: Mailing) -> int:
    """Queue the mailing for everyone in its segment now, in the caller's transaction;
    returns how many. The web pages do the same as a background job, chunk by chunk."""
    begin_send(actor, group, mailing)
    after = 0
    while True:
        count, after = queue_next_recipients(group, mailing, after)
        if count == 0:
            break
    finish_queueing(mailing)
    return mailing.recipient_count


def local_to_utc(value: datetime) -> datetime:
    """A wall-clock time in the configured zone (Europe/London) as UTC.

    A time the clocks skip (the spring change) does not exist and is refused.
    """
    zone = ZoneInfo(current_app.config["TIMEZONE"])
    if value.tzinfo is not None:
        return value.astimezone(UTC)
    local = value.replace(tzinfo=zone)
    as_utc = local.astimezone(UTC)
    if as_utc.astimezone(zone).replace(tzinfo=None) != value:
        raise MailingError(
            _l("That time does not exist here: the clocks go forward then. Choose another.")
        )
    return as_utc


def schedule(
    actor: User, group: Group, mailing: Mailing, when: datetime, *, now: datetime | None = None
) -> Mailing:
    """Send the mailing at ``when`` (aware; stored in UTC), which must be in the future."""
    now = now or utcnow()
    if when.tzinfo is None:
        raise ValueError("schedule() needs an aware datetime")
    _require_draft(mailing)
    _check_sendable(group, mailing)
    if when <= now:
        raise MailingError(_l("Choose a time in the future."))
    if when > now + SCHEDULE_MAX_AHEAD:
        raise MailingError(_l("Choose a time within the next year."))
    mailing.status = MailingStatus.SCHEDULED
    mailing.scheduled_for = when.astimezone(UTC)
    audit.record(
        "mailing.scheduled",
        actor_id=actor.id,
        group_id=group.id,
        mailing=mailing.id,
        when=mailing.scheduled_for.isoformat(),
    )
    db.session.flush()
    return mailing


def unschedule(actor: User, mailing: Mailing) -> Mailing:
    """Take a scheduled mailing back to a draft (before it has gone out)."""
    if mailing.status != MailingStatus.SCHEDULED:
        raise MailingError(_l("Only a scheduled mailing can be taken back."))
    mailing.status = MailingStatus.DRAFT
    mailing.scheduled_for = None
    audit.record(
        "mailing.unscheduled", actor_id=actor.id, group_id=mailing.group_id, mailing=mailing.id
    )
    db.session.flush()
    return mailing


def queue_due_mailings(now: datetime | None = None) -> list[Mailing]:
    """Queue every scheduled mailing whose time has come (the scheduler's job).

    Safe to run twice or in parallel: each mailing is claimed with a conditional
    UPDATE before its recipients are queued. A mailing that can no longer be sent (its
    tag was deleted, the group is no longer approved) goes back to being a draft.
    """
    now = now or utcnow()
    due = db.session.scalars(
        select(Mailing)
        .where(Mailing.status == MailingStatus.SCHEDULED, Mailing.scheduled_for <= now)
        .order_by(Mailing.scheduled_for, Mailing.id)
    ).all()
    queued: list[Mailing] = []
    for mailing in due:
        group = db.session.get(Group, mailing.group_id)
        if group is None:
            continue
        try:
            _check_sendable(group, mailing)
        except MailingError as exc:
            current_app.logger.warning("scheduled mailing %s not sent: %s", mailing.id, exc)
            mailing.status = MailingStatus.DRAFT
            mailing.scheduled_for = None
            db.session.flush()
            continue
        if not _claim(mailing, (MailingStatus.SCHEDULED,)):
            continue
        count = _queue_recipients(group, mailing)
        audit.record("mailing.sent", group_id=group.id, mailing=mailing.id, recipients=count)
        queued.append(mailing)
    return queued


_UNFINISHED = (OutboxStatus.QUEUED, OutboxStatus.SENDING)
UNDELIVERED = tuple(status.value for status in OutboxStatus if status != OutboxStatus.SENT)


def refresh_status(mailing: Mailing) -> Mailing:
    """SENDING becomes SENT only when none of the mailing's outbox rows is still unsent."""
    if mailing.status != MailingStatus.SENDING:
        return mailing
    unfinished = db.session.scalar(
        select(sa.func.count(OutboxMessage.id)).where(
            OutboxMessage.mailing_id == mailing.id,
            OutboxMessage.group_id == mailing.group_id,
            OutboxMessage.status.in_([s.value for s in _UNFINISHED]),
        )
    )
    if unfinished == 0:
        last_sent = db.session.scalar(
            select(sa.func.max(OutboxMessage.sent_at)).where(
                OutboxMessage.mailing_id == mailing.id,
                OutboxMessage.group_id == mailing.group_id,
            )
        )
        mailing.status = MailingStatus.SENT
        mailing.finished_at = last_sent or utcnow()
        db.session.flush()
    return mailing


def refresh_sending_mailings() -> int:
    """Refresh every mailing still SENDING; returns how many are now SENT."""
    finished = 0
    for mailing in db.session.scalars(
        select(Mailing).where(Mailing.status == MailingStatus.SENDING)
    ).all():
        if refresh_status(mailing).status == MailingStatus.SENT:
            finished += 1
    return finished


# --- reports -----------------------------------------------------------------------------------


@dataclass
class MailingCounts:
    """Per-mailing figures, from its outbox rows."""

    queued: int = 0  # not delivered yet (queued, or being sent)
    sent: int = 0
    failed: int = 0
    skipped: int = 0
    bounced: int = 0  # failed, and the address is now suppressed as a hard bounce
    unsubscribed: int = 0  # recipients who withdrew consent after it was queued

    @property
    def total(self) -> int:
        return self.queued + self.sent + self.failed + self.skipped

    @property
    def undelivered(self) -> int:
        """Rows ``undelivered_rows`` pages through: everything not sent."""
        return self.queued + self.failed + self.skipped


def mailing_counts(group: Group, mailings: list[Mailing]) -> dict[int, MailingCounts]:
    """Counts for each of this group's mailings (drafts and scheduled ones have none)."""
    counts = {mailing.id: MailingCounts() for mailing in mailings}
    ids = [m.id for m in mailings if m.group_id == group.id and m.queued_at is not None]
    if not ids:
        return counts
    # Only the rows not delivered are counted (a few seeks on ix_outbox_mailing_status);
    # the delivered are the rest of the rows queued, which the mailing counted when it
    # queued them (outbox rows are never deleted). Counting the 100,000 "sent" rows of a
    # big mailing was most of the report's time.
    rows = db.session.execute(
        select(OutboxMessage.mailing_id, OutboxMessage.status, sa.func.count())
        .where(
            OutboxMessage.mailing_id.in_(ids),
            OutboxMessage.group_id == group.id,
            OutboxMessage.status.in_(UNDELIVERED),
        )
        .group_by(OutboxMessage.mailing_id, OutboxMessage.status)
    )
    for mailing_id, status, number in rows:
        entry = counts[mailing_id]
        if status in _UNFINISHED:
            entry.queued += number
        elif status == OutboxStatus.FAILED:
            entry.failed += number
        else:
            entry.skipped += number
    for mailing in mailings:
        if mailing.id in ids:
            entry = counts[mailing.id]
            entry.sent = max(0, mailing.recipient_count - entry.undelivered)
    bounced = db.session.execute(
        select(OutboxMessage.mailing_id, sa.func.count(sa.distinct(OutboxMessage.to_addr)))
        .join(
            Suppression,
            sa.and_(
                Suppression.group_id == OutboxMessage.group_id,
                Suppression.email == OutboxMessage.to_addr,
            ),
        )
        .where(
            OutboxMessage.mailing_id.in_(ids),
            OutboxMessage.group_id == group.id,
            OutboxMessage.status == OutboxStatus.FAILED,
            Suppression.reason == SuppressionReason.HARD_BOUNCE,
        )
        .group_by(OutboxMessage.mailing_id)
    )
    for mailing_id, number in bounced:
        counts[mailing_id].bounced = number
    for mailing in mailings:
        if mailing.id not in ids:
            continue
        counts[mailing.id].unsubscribed = (
            db.session.scalar(
                select(sa.func.count(sa.distinct(ConsentRecord.supporter_id))).where(
                    ConsentRecord.group_id == group.id,
                    ConsentRecord.action == ConsentAction.WITHDRAWN,
                    ConsentRecord.created_at >= mailing.queued_at,
                    # From the few withdrawals since, those who were sent this mailing
                    # (not the other way round: the mailing may have 100,000 rows).
                    sa.exists().where(
                        OutboxMessage.supporter_id == ConsentRecord.supporter_id,
                        OutboxMessage.mailing_id == mailing.id,
                        OutboxMessage.group_id == group.id,
                    ),
                )
            )
            or 0
        )
    return counts


def undelivered_rows(group: Group, mailing: Mailing, *, offset: int, limit: int) -> list:
    """One page of the mailing's outbox rows not (yet) delivered (queued, sending,
    failed, skipped), oldest first.

    The page's ids come from the covering index ix_outbox_mailing_status alone, sorted
    there (``id + 0``: ordered by plain ``id``, SQLite would walk the whole table in id
    order, reading the 100,000 rows that were delivered); then only those rows are read.
    """
    page_ids = (
        select(OutboxMessage.id)
        .where(
            OutboxMessage.mailing_id == mailing.id,
            OutboxMessage.group_id == group.id,
            OutboxMessage.status.in_(UNDELIVERED),
        )
        .order_by(OutboxMessage.id + 0)
        .limit(limit)
        .offset(offset)
    )
    return list(
        db.session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.id.in_(page_ids.scalar_subquery()))
            .order_by(OutboxMessage.id)
        )
    )


def erased_supporter_ids(group: Group, supporter_ids: list[int | None]) -> set[int]:
    """Which of these supporters were erased since: their address is not shown any more."""
    ids = [i for i in supporter_ids if i is not None]
    if not ids:
        return set()
    return set(
        db.session.scalars(
            select(Supporter.id).where(
                Supporter.id.in_(ids),
                Supporter.group_id == group.id,
                Supporter.erased_at.is_not(None),
            )
        )
    )


def site_name() -> str:
    """The platform's name, as people know it from the emails."""
    return current_app.config["SITE_NAME"]


# --- unsubscribe -------------------------------------------------------------------------------


def supporter_for_token(token: str) -> Supporter:
    """The supporter an unsubscribe link was made for (raises ``TokenError``)."""
    return supporter_from_unsubscribe_token(token)


def unsubscribe_from_group(supporter: Supporter, method: ConsentMethod) -> Supporter:
    """The person stops this group's updates (idempotent; erased rows are left alone)."""
    if supporter.erased_at is None:
        unsubscribe(supporter, method)
    db.session.flush()
    return supporter


def unsubscribe_everywhere(supporter: Supporter) -> int:
    """The person stops every group's updates to this address; returns how many rows.

    The only operation that crosses groups, and only for the address the unsubscribe
    token proves the person receives mail at.
    """
    if supporter.erased_at is not None:
        return 0
    rows = db.session.scalars(
        select(Supporter).where(Supporter.email == supporter.email, Supporter.erased_at.is_(None))
    ).all()
    for row in rows:
        unsubscribe(row, ConsentMethod.UNSUBSCRIBE_PAGE, "all groups, from the preferences page")
    db.session.flush()
    return len(rows)


def is_unsubscribed(supporter: Supporter) -> bool:
    """Whether the group's updates have stopped for this supporter (or they were erased)."""
    return supporter.erased_at is not None or supporter.updates_status == UpdatesStatus.UNSUBSCRIBED


def masked_email(email: str) -> str:
    """Enough of an address for its owner to recognise it: ``a•••@example.org``."""
    local, _sep, domain = email.partition("@")
    return f"{local[:1]}•••@{domain}" if domain else "•••"


# --- the person's own data: download and erasure, through an emailed one-hour link ------------
#
# The unsubscribe link lives for years and a campaign email gets forwarded, so it is no
# key to anyone's data: it only asks for a short-lived link, sent to the address itself.

DATA_LINK_MAX_AGE = 3600


def data_link_token(supporter: Supporter) -> str:
    """A link for one hour, for this address as it is now (erasure ends it)."""
    return make_token(
        "my-data",
        {"s": supporter.id, "g": supporter.group_id, "f": fingerprint(supporter.email)},
    )


def send_data_link(supporter: Supporter) -> bool:
    """Email the supporter's own address a one-hour link to their data download and
    erasure. Mail anyone holding a forwarded email can trigger: it carries nothing
    typed, and counts towards the address's daily limit of such mail. False when that
    limit is reached (nothing queued) or the supporter is erased."""
    if supporter.erased_at is not None:
        return False
    url = external_url("mailing.my_data", token=data_link_token(supporter))
    row = queue_email(
        supporter.email,
        "data_access_link",
        category=MailCategory.STRANGER,
        group_id=supporter.group_id,
        group=supporter.group,
        access_url=url,
        minutes=DATA_LINK_MAX_AGE // 60,
    )
    return row is not None


def supporter_for_data_token(token: str) -> Supporter:
    """The supporter an emailed data link was made for (raises ``TokenError``)."""
    data = read_token("my-data", token, DATA_LINK_MAX_AGE)
    supporter = db.session.get(Supporter, data.get("s"))
    if supporter is None or supporter.group_id != data.get("g"):
        raise TokenError("invalid")
    if supporter.erased_at is not None or data.get("f") != fingerprint(supporter.email):
        raise TokenError("used")
    return supporter


def download_own_data(supporter: Supporter) -> dict[str, Any]:
    """The person's data download, from every capability; audited without their IP."""
    audit.record(
        "supporter.data_exported", group_id=supporter.group_id, keep_ip=False,
        supporter=supporter.id, by="the person, from an emailed link",
    )  # fmt: skip
    return export_supporter(supporter)


def erase_self(supporter: Supporter) -> None:
    """The person erases themself from this group, from the emailed link."""
    erase_supporter(None, supporter)
