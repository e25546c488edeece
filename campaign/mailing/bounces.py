"""Inbound mail about mail we sent: bounces, spam complaints, unsubscribe requests.

Relays that cannot deliver a message they accepted send a report back to the envelope
sender; mailbox providers send a complaint (an ARF report) when someone presses
"this is spam". ``flask --app campaign bounces ingest`` feeds such messages to
``ingest_bounce()`` (docs/bounces.md has the policy and the wiring).

Reading a report (``parse_bounce``) and acting on it (``ingest_bounce``) are kept
apart. Standard reports (RFC 3464 DSNs, RFC 5965 ARF) are read here, wherever they sit
in the message and with or without the ``report-type`` parameter; the dozens of
non-standard formats of older servers (qmail, Exim's plain text, Exchange, GroupWise,
Yahoo, AOL...) are left to Mailman's ``flufl.bounce`` detectors.

Acting on a report is careful, because a bounce is mail anyone can send us: it counts
only when it matches a message we sent (by the original Message-ID, or, with no
Message-ID at all, by a recent message to that address), and it affects only the group
whose message it was.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email import message_from_bytes, policy
from email.message import Message
from email.parser import HeaderParser
from email.utils import getaddresses, parseaddr
from typing import Any

import sqlalchemy as sa
from flufl.bounce import all_failures
from sqlalchemy import select

from campaign.core import erasure
from campaign.core.erasure import ErasureSubject
from campaign.core.models import utcnow
from campaign.core.outbox import OutboxMessage, OutboxStatus, permanent_failure
from campaign.core.tokens import TokenError
from campaign.extensions import db
from campaign.mailing.models import BounceEvent, BounceKind
from campaign.people.models import ConsentMethod, Supporter, SuppressionReason
from campaign.people.services import (
    is_suppressed,
    supporter_from_unsubscribe_token,
    supporter_page_sections,
    suppress,
    unsubscribe,
)

log = logging.getLogger(__name__)

# A bounce with no Message-ID is matched to the latest message sent to that address in
# this many days; older mail is not what a fresh bounce is about.
MATCH_BY_ADDRESS_DAYS = 14
# Temporary failures suppress an address only when they repeat: on this many different
# messages, the first and the last this far apart, with no delivery in between.
SOFT_BOUNCE_MESSAGES = 3
SOFT_BOUNCE_SPAN = timedelta(days=3)
REASON_LENGTH = 300
COMPLAINT_TYPES = {"abuse", "fraud"}

_STATUS = re.compile(r"\b([245])\.\d{1,3}\.\d{1,3}\b")
_SMTP_CODE = re.compile(r"\b([245])\d\d\b")
_MESSAGE_ID = re.compile(r"<[^<>\s@]+@[^<>\s]+>")
_MESSAGE_ID_LINE = re.compile(r"^\s*Message-ID:\s*(<[^<>\s]+>)", re.I | re.M)
_AUTOREPLY_SUBJECT = re.compile(
    r"^\s*(auto(matic)?[ -]?(reply|response|antwort)|out of (the )?office|abwesenheit|"
    r"absence|away from|on vacation|r[ée]ponse automatique)",
    re.I,
)
# Words of a delay warning: whatever a heuristic detector makes of the rest, it is temporary.
_WARNING = re.compile(
    r"warning only|still being retried|will be retried|will retry|not yet been delivered|"
    r"no action is required|delivery (has been )?delayed|delayed mail",
    re.I,
)
_REPORT_PARTS = ("message/delivery-status", "message/global-delivery-status")
_ORIGINAL_PARTS = ("message/rfc822", "text/rfc822-headers", "message/global-headers")


@dataclass
class BounceReport:
    """What one inbound message says about our mail.

    ``permanent`` and ``temporary`` are the addresses that failed (lower case);
    ``complaints`` the addresses whose owner reported our mail as spam. ``message_id``
    is the Message-ID of the original message when the report quotes it.
    """

    permanent: set[str] = field(default_factory=set)
    temporary: set[str] = field(default_factory=set)
    complaints: set[str] = field(default_factory=set)
    message_id: str | None = None
    # Every Message-ID the report names, most trustworthy first.
    message_ids: list[str] = field(default_factory=list)
    # The server's words for each address, shortened.
    reasons: dict[str, str] = field(default_factory=dict)
    # "dsn" (RFC 3464), "arf" (RFC 5965), "detector" (flufl.bounce), or "" for neither.
    format: str = ""
    feedback_type: str = ""

    @property
    def is_bounce(self) -> bool:
        return bool(self.permanent or self.temporary)

    @property
    def is_complaint(self) -> bool:
        return bool(self.complaints) or self.format == "arf"


# --- reading ------------------------------------------------------------------------------


def _parts(message: Message) -> list[Message]:
    """Every part of the report itself, not descending into an enclosed original message
    (a quoted message is what bounced, not a report about it)."""
    found = [message]
    if message.is_multipart() and message.get_content_type() not in _ORIGINAL_PARTS:
        for part in message.get_payload():
            if isinstance(part, Message):
                found.extend(_parts(part))
    return found


def _field_blocks(part: Message) -> list[Message]:
    """The header blocks of a delivery-status part: one per message, then one per
    recipient. The email package parses message/delivery-status into sub-messages;
    other spellings (global-delivery-status, an encoded body) arrive as text."""
    payload = part.get_payload()
    encoded = _field(part, "content-transfer-encoding").lower() in ("base64", "quoted-printable")
    if isinstance(payload, list) and payload and not encoded:
        return [block for block in payload if isinstance(block, Message)]
    raw = part.get_payload(decode=True)
    if isinstance(payload, list):  # encoded, then wrongly split: re-join the blocks
        raw = "\n\n".join(block.as_string() for block in payload).encode()
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(payload or "")
    parser = HeaderParser()
    return [
        parser.parsestr(block) for block in re.split(r"\r?\n[ \t]*\r?\n", text) if block.strip()
    ]


def _field(block: Message, name: str) -> str:
    """A header as text (the email package hands back a Header for undecodable bytes)."""
    value = block.get(name)
    return str(value) if value is not None else ""


def _typed_address(value: str | None) -> str:
    """'rfc822; Someone@Example.org' → 'someone@example.org' ('' for other types)."""
    if not value:
        return ""
    kind, _, address = value.partition(";")
    if not address:  # no address type at all (seen in the wild): take it as it is
        kind, address = "rfc822", kind
    if kind.strip().lower() not in ("rfc822", "utf-8"):
        return ""
    address = parseaddr(address.strip())[1] or address.strip().strip("<>")
    return address.lower() if "@" in address else ""


def _short(text: str) -> str:
    return " ".join(text.split())[:REASON_LENGTH]


def _read_dsn(part: Message, report: BounceReport) -> None:
    """One message/delivery-status part (RFC 3464 section 2.3)."""
    for block in _field_blocks(part)[1:]:
        # The address we sent to: Original-Recipient when the relay kept it, since
        # Final-Recipient may be an internal alias the mailbox was forwarded to.
        address = _typed_address(_field(block, "Original-Recipient")) or _typed_address(
            _field(block, "Final-Recipient")
        )
        action = _field(block, "Action").strip().lower()
        status = _field(block, "Status").strip()
        if not address:
            continue
        diagnostic = _field(block, "Diagnostic-Code").partition(";")
        reason = diagnostic[2] or diagnostic[0] or status
        if action.startswith("delayed"):
            permanent = False
        elif action.startswith(("failed", "error")):
            # Permanent only on a 5.x.x status (or, with none, a 5xx reply). A failure
            # with a 4.x.x status (typically 4.4.7, given up after days of trying) is
            # still temporary: the mailbox may well exist.
            code = _STATUS.match(status) or (not status and _SMTP_CODE.search(reason))
            permanent = bool(code) and code.group(1) == "5"
        else:  # delivered, relayed, expanded: not a failure
            continue
        if status and status not in reason:
            reason = f"{status} {reason}"
        (report.permanent if permanent else report.temporary).add(address)
        report.reasons.setdefault(address, _short(reason or action))
    report.temporary -= report.permanent


def _headers_of(part: Message) -> Message | None:
    """The header block of an enclosed original message (rfc822 or headers only)."""
    payload = part.get_payload()
    if isinstance(payload, list):
        return payload[0] if payload and isinstance(payload[0], Message) else None
    raw = part.get_payload(decode=True)
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(payload or "")
    return HeaderParser().parsestr(text.lstrip("\r\n"))


def _message_ids(message: Message, parts: list[Message]) -> list[str]:
    """Message-IDs of the original: the enclosed copy first, then In-Reply-To and
    References, then a Message-ID line quoted in the text (qmail and others paste the
    original message into the body)."""
    found: list[str] = []
    for part in parts:
        if part.get_content_type() in _ORIGINAL_PARTS:
            headers = _headers_of(part)
            if headers is not None and headers.get("Message-ID"):
                found.extend(_MESSAGE_ID.findall(str(headers["Message-ID"])))
    for name in ("In-Reply-To", "References"):
        found.extend(_MESSAGE_ID.findall(str(message.get(name, ""))))
    if not found:
        for part in parts:
            if part.get_content_type() == "text/plain":
                found.extend(_MESSAGE_ID_LINE.findall(_text(part)))
    return list(dict.fromkeys(found))


def _text(part: Message) -> str:
    raw = part.get_payload(decode=True)
    if not isinstance(raw, bytes):
        return ""
    try:
        return raw.decode(part.get_content_charset() or "utf-8", "replace")
    except (LookupError, ValueError):  # a charset nobody has heard of, or a garbled name
        return raw.decode("utf-8", "replace")


def _read_arf(part: Message, parts: list[Message], report: BounceReport) -> None:
    """A message/feedback-report part (RFC 5965 section 3)."""
    [block, *_] = _field_blocks(part) or [Message()]
    report.format = "arf"
    report.feedback_type = _field(block, "Feedback-Type").strip().lower()
    if report.feedback_type not in COMPLAINT_TYPES:
        return
    addresses = [
        a.lower() for _, a in getaddresses([str(v) for v in block.get_all("Original-Rcpt-To", [])])
    ]
    if not addresses:
        for original in parts:
            if original.get_content_type() in _ORIGINAL_PARTS:
                headers = _headers_of(original)
                if headers is not None:
                    addresses = [
                        a.lower()
                        for _, a in getaddresses([str(v) for v in headers.get_all("To", [])])
                    ]
                break
    for address in addresses:
        if "@" in address:
            report.complaints.add(address)
            report.reasons[address] = _short(f"complaint ({report.feedback_type})")


def _is_autoreply(message: Message) -> bool:
    """An out-of-office or other automatic answer: it proves the mailbox works."""
    if message.get("X-Autoreply") or message.get("X-Autorespond"):
        return True
    if _field(message, "Precedence").strip().lower() == "auto_reply":
        return True
    return bool(_AUTOREPLY_SUBJECT.match(str(message.get("Subject", ""))))


def _reason_from_text(message: Message, address: str) -> str:
    """A non-standard bounce has no Diagnostic-Code: the first line of its text naming
    an SMTP reply (and preferably the address), else its subject."""
    lines = [
        line.strip()
        for part in _parts(message)
        if part.get_content_type() == "text/plain"
        for line in _text(part).splitlines()
    ]
    coded = [line for line in lines if _STATUS.search(line) or _SMTP_CODE.search(line)]
    for line in coded:
        if address in line.lower():
            return _short(line)
    if coded:
        return _short(coded[0])
    return _short(str(message.get("Subject", "")) or "undeliverable")


def parse_bounce(raw: bytes) -> BounceReport:
    """What an inbound message says about delivery of our mail (empty when nothing)."""
    message = message_from_bytes(raw, policy=policy.compat32)
    parts = _parts(message)
    report = BounceReport()
    report.message_ids = _message_ids(message, parts)
    report.message_id = report.message_ids[0] if report.message_ids else None
    feedback = [part for part in parts if part.get_content_type() == "message/feedback-report"]
    if feedback:
        _read_arf(feedback[0], parts, report)
        return report
    dsn_parts = [part for part in parts if part.get_content_type() in _REPORT_PARTS]
    if dsn_parts:
        report.format = "dsn"
        for part in dsn_parts:
            _read_dsn(part, report)
        return report
    if _is_autoreply(message):
        return report
    try:
        temporary, permanent = all_failures(message)
    except Exception:  # a detector tripping over an odd message: it is not a report we can use
        log.warning("the bounce detectors could not read a message", exc_info=True)
        return report
    warning = _WARNING.search(str(message.get("Subject", ""))) or any(
        _WARNING.search(_text(part)) for part in parts if part.get_content_type() == "text/plain"
    )
    for found, target in ((permanent, report.permanent), (temporary, report.temporary)):
        if warning:
            target = report.temporary
        for address in found:
            text = address.decode("ascii", "replace").strip().strip("<>").lower()
            if "@" not in text:
                continue
            reason = _reason_from_text(message, text)
            # Whatever the server's format, a 4.x.x or 4xx reply is not a dead mailbox.
            code = _STATUS.search(reason) or _SMTP_CODE.search(reason)
            if code and code.group(1) == "4":
                target = report.temporary
            target.add(text)
            report.reasons[text] = reason
    report.temporary -= report.permanent
    if report.is_bounce:
        report.format = "detector"
    return report


# --- acting on it -------------------------------------------------------------------------


@dataclass
class IngestResult:
    messages: int = 0
    permanent: int = 0  # permanent failures of messages we sent
    temporary: int = 0
    complaints: int = 0
    suppressed: int = 0  # addresses newly put on a group's do-not-mail list
    unmatched: int = 0  # failures and complaints about no message we sent: ignored
    unsubscribed: int = 0  # unsubscribe requests sent by email
    neither: int = 0  # not a report, not a request (an out-of-office, a reply)


def _match_by_id(message_ids: list[str]) -> OutboxMessage | None:
    if not message_ids:
        return None
    rows = db.session.scalars(
        select(OutboxMessage).where(OutboxMessage.message_id.in_(message_ids))
    ).all()
    by_id = {row.message_id: row for row in rows}
    return next((by_id[mid] for mid in message_ids if mid in by_id), None)


def _match_by_address(address: str, now: datetime) -> OutboxMessage | None:
    """The latest message sent to this address lately (whichever group sent it)."""
    return db.session.scalar(
        select(OutboxMessage)
        .where(
            OutboxMessage.to_addr == address,
            OutboxMessage.status.in_([OutboxStatus.SENT, OutboxStatus.FAILED]),
            OutboxMessage.sent_at >= now - timedelta(days=MATCH_BY_ADDRESS_DAYS),
        )
        .order_by(OutboxMessage.sent_at.desc(), OutboxMessage.id.desc())
        .limit(1)
    )


def _matches(
    report: BounceReport, addresses: set[str], now: datetime, *, id_is_enough: bool = False
) -> dict[str, OutboxMessage]:
    """Which message we sent each reported address is about; unmatched ones are left out.

    A report quoting a Message-ID is about that message only, and only about the one
    address it went to (``id_is_enough`` for complaints, whose providers often hide the
    address: the complaint comes from whoever got that message); a report quoting an
    unknown Message-ID is about nothing we sent, whatever addresses it names.
    """
    if report.message_ids:
        row = _match_by_id(report.message_ids)
        if row is None or not (id_is_enough or row.to_addr in addresses):
            return {}
        return {row.to_addr: row}
    found = {}
    for address in sorted(addresses):
        row = _match_by_address(address, now)
        if row is not None:
            found[address] = row
    return found


def _record(
    row: OutboxMessage, address: str, kind: BounceKind, reason: str, now: datetime
) -> BounceEvent | None:
    """A BounceEvent for a group's message (once per report: re-reading the same
    report records nothing new)."""
    if row.group_id is None:
        return None
    reason = _short(reason)
    existing = db.session.scalar(
        select(BounceEvent).where(
            BounceEvent.group_id == row.group_id,
            BounceEvent.address == address,
            BounceEvent.message_id == row.message_id,
            BounceEvent.kind == kind,
            BounceEvent.reason == reason,
        )
    )
    if existing is not None:
        return None
    supporter = _supporter(row.group_id, row.supporter_id, address)
    bounce = BounceEvent(
        group_id=row.group_id,
        supporter_id=supporter.id if supporter else None,
        address=address,
        kind=kind,
        reason=reason,
        message_id=row.message_id,
        received_at=now,
    )
    db.session.add(bounce)
    db.session.flush()
    return bounce


def _supporter(group_id: int, supporter_id: int | None, address: str) -> Supporter | None:
    """The group's supporter a message went to (by its id, else by the address)."""
    if supporter_id is not None:
        supporter = db.session.get(Supporter, supporter_id)
        if supporter is not None and supporter.group_id == group_id:
            return supporter
    return db.session.scalar(
        select(Supporter).where(Supporter.group_id == group_id, Supporter.email == address)
    )


def _suppress(group_id: int, address: str, reason: SuppressionReason, detail: str) -> bool:
    """Put the address on the group's do-not-mail list; False when it already was."""
    if is_suppressed(group_id, address):
        return False
    suppress(group_id, address, reason, detail)
    return True


def soft_bounce_streak(group_id: int, address: str) -> list[BounceEvent]:
    """The temporary failures that count towards suppressing this address for the group.

    Counting restarts after any sign that mail reaches them: a message of the group to
    the address that drew no report at all, sent before the latest failed one, or the
    person confirming a subscription (which needs the confirmation email to arrive).
    """
    failed = db.session.execute(
        select(BounceEvent, OutboxMessage.sent_at)
        .join(OutboxMessage, OutboxMessage.message_id == BounceEvent.message_id)
        .where(
            BounceEvent.group_id == group_id,
            BounceEvent.address == address,
            BounceEvent.kind == BounceKind.TEMPORARY,
        )
        .order_by(BounceEvent.received_at)
    ).all()
    if not failed:
        return []
    latest_sent = max((sent_at for _, sent_at in failed if sent_at is not None), default=None)
    if latest_sent is None:
        return [bounce for bounce, _ in failed]
    reported = select(BounceEvent.message_id).where(
        BounceEvent.group_id == group_id, BounceEvent.address == address
    )
    delivered = db.session.scalar(
        select(sa.func.max(OutboxMessage.sent_at)).where(
            OutboxMessage.group_id == group_id,
            OutboxMessage.to_addr == address,
            OutboxMessage.status == OutboxStatus.SENT,
            OutboxMessage.sent_at < latest_sent,
            OutboxMessage.message_id.not_in(reported),
        )
    )
    confirmed = db.session.scalar(
        select(sa.func.max(Supporter.updates_confirmed_at)).where(
            Supporter.group_id == group_id, Supporter.email == address
        )
    )
    return [
        bounce
        for bounce, sent_at in failed
        if (delivered is None or (sent_at is not None and sent_at > delivered))
        and (confirmed is None or bounce.received_at > confirmed)
    ]


def _soft_bounce_limit_reached(group_id: int, address: str) -> str | None:
    """The reason to suppress after repeated temporary failures, or None."""
    streak = soft_bounce_streak(group_id, address)
    messages = {bounce.message_id for bounce in streak}
    if len(messages) < SOFT_BOUNCE_MESSAGES:
        return None
    span = streak[-1].received_at - streak[0].received_at
    if span < SOFT_BOUNCE_SPAN:
        return None
    return _short(
        f"temporary failures on {len(messages)} messages over {span.days} days; "
        f"last: {streak[-1].reason}"
    )


def _apply_failure(
    row: OutboxMessage, address: str, kind: BounceKind, reason: str, now: datetime,
    result: IngestResult,
) -> None:  # fmt: skip
    bounce = _record(row, address, kind, reason, now)
    if kind == BounceKind.PERMANENT:
        result.permanent += 1
        row.status = OutboxStatus.FAILED
        row.last_error = _short(f"bounced: {reason}")[:500]
        if row.group_id is not None and _suppress(
            row.group_id, address, SuppressionReason.HARD_BOUNCE, f"bounce: {reason}"
        ):
            result.suppressed += 1
        return
    result.temporary += 1
    if bounce is None or row.group_id is None:
        return
    why = _soft_bounce_limit_reached(row.group_id, address)
    if why and _suppress(row.group_id, address, SuppressionReason.HARD_BOUNCE, why):
        result.suppressed += 1


def _apply_complaint(row: OutboxMessage, address: str, report: BounceReport, now: datetime,
                     result: IngestResult) -> None:  # fmt: skip
    """The person told their mail provider our mail is spam: this group stops mailing
    them (an unsubscribe, recorded as a complaint); other groups are not affected."""
    result.complaints += 1
    if row.group_id is None:
        return
    reason = report.reasons.get(address, "complaint")
    _record(row, address, BounceKind.COMPLAINT, reason, now)
    if _suppress(row.group_id, address, SuppressionReason.COMPLAINT, reason):
        result.suppressed += 1
    supporter = _supporter(row.group_id, row.supporter_id, address)
    if supporter is not None and supporter.erased_at is None:
        unsubscribe(supporter, ConsentMethod.COMPLAINT, "reported by their mail provider")


_UNSUBSCRIBE_SUBJECT = re.compile(r"unsubscribe-([A-Za-z0-9_.\-]{20,400})")


def _unsubscribe_request(raw: bytes) -> bool:
    """An email to the List-Unsubscribe mailto address: unsubscribe, as the link would."""
    message = message_from_bytes(raw, policy=policy.default)
    found = _UNSUBSCRIBE_SUBJECT.search(str(message.get("Subject", "")))
    if not found:
        return False
    try:
        supporter = supporter_from_unsubscribe_token(found.group(1))
    except TokenError:
        return False
    if supporter.erased_at is None:
        unsubscribe(supporter, ConsentMethod.EMAIL_LINK, "unsubscribe request by email")
    return True


def ingest_bounce(
    raw: bytes, result: IngestResult | None = None, *, now: datetime | None = None
) -> IngestResult:
    """Apply one inbound message: bounce, complaint or emailed unsubscribe. Flushes."""
    result = result or IngestResult()
    result.messages += 1
    now = now or utcnow()
    report = parse_bounce(raw)
    if report.is_complaint and report.feedback_type not in COMPLAINT_TYPES:
        result.neither += 1  # e.g. "not-spam": nothing to do
    elif report.is_complaint:
        matched = _matches(report, report.complaints, now, id_is_enough=True)
        if not matched:
            result.unmatched += 1
        for address, row in matched.items():
            _apply_complaint(row, address, report, now, result)
    elif report.is_bounce:
        matched = _matches(report, report.permanent | report.temporary, now)
        result.unmatched += len(report.permanent | report.temporary) - len(matched)
        for address, row in matched.items():
            kind = BounceKind.PERMANENT if address in report.permanent else BounceKind.TEMPORARY
            _apply_failure(row, address, kind, report.reasons.get(address, ""), now, result)
    elif _unsubscribe_request(raw):
        result.unsubscribed += 1
    else:
        result.neither += 1
    db.session.flush()
    return result


# --- reactions to other capabilities ------------------------------------------------------


@permanent_failure.connect
def _suppress_refused_address(_sender: object, row: OutboxMessage, **_extra: object) -> None:
    """The relay refused an address outright (5xx at send time): the group stops mailing
    it, and organisers see the relay's words on the supporter's page."""
    if row.group_id is None:
        return
    reason = row.last_error or "refused by the relay"
    _record(row, row.to_addr, BounceKind.PERMANENT, reason, utcnow())
    suppress(row.group_id, row.to_addr, SuppressionReason.HARD_BOUNCE, reason)


def _erase_bounces(subject: ErasureSubject) -> None:
    """Erasing a supporter removes their delivery problems too (they name the address)."""
    db.session.execute(
        sa.delete(BounceEvent)
        .where(
            BounceEvent.group_id == subject.group_id,
            sa.or_(
                BounceEvent.supporter_id == subject.supporter_id,
                sa.func.lower(BounceEvent.address) == subject.email.lower(),
            ),
        )
        .execution_options(synchronize_session=False)
    )


def _export_bounces(subject: ErasureSubject) -> dict[str, Any]:
    events = db.session.scalars(
        select(BounceEvent)
        .where(
            BounceEvent.group_id == subject.group_id,
            sa.or_(
                BounceEvent.supporter_id == subject.supporter_id,
                sa.func.lower(BounceEvent.address) == subject.email.lower(),
            ),
        )
        .order_by(BounceEvent.received_at)
    )
    return {
        "delivery_problems": [
            {"kind": e.kind, "reason": e.reason, "received_at": e.received_at.isoformat()}
            for e in events
        ]
    }


erasure.register(
    "mailing-bounces", models=[BounceEvent], erase=_erase_bounces, export=_export_bounces,
    order=30,
)  # fmt: skip


@supporter_page_sections.connect
def _delivery_problems(supporter: Supporter, **_extra: object) -> tuple[str, dict] | None:
    """The supporter page's "Delivery problems" section: each report and its reason."""
    bounces = db.session.scalars(
        select(BounceEvent)
        .where(
            BounceEvent.group_id == supporter.group_id,
            sa.or_(
                BounceEvent.supporter_id == supporter.id,
                BounceEvent.address == supporter.email,
            ),
        )
        .order_by(BounceEvent.received_at.desc(), BounceEvent.id.desc())
        .limit(50)
    ).all()
    return "mailing/_delivery_problems.html", {"bounces": bounces}
