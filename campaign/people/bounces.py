"""Inbound mail: bounces (RFC 3464 DSNs) and unsubscribe requests sent by email.

A relay that cannot deliver a message it accepted sends a DSN back to the envelope
sender. Feed those messages to ``flask --app campaign bounces ingest`` (see
docs/bounces.md). A permanent failure (``Action: failed``, status ``5.x.x``) puts the
address on the suppression list of the group whose message bounced, matched by the
Message-ID we fixed when the message was queued; a delay (``4.x.x``) changes nothing.

The ``mailto:`` entry of List-Unsubscribe sends a message whose subject carries the
person's unsubscribe token (``unsubscribe-<token>``); feeding it to the same command
unsubscribes them, exactly as the link would.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage, Message

from sqlalchemy import select

from campaign.core.outbox import OutboxMessage, OutboxStatus, permanent_failure
from campaign.core.tokens import TokenError
from campaign.extensions import db
from campaign.people.models import ConsentMethod, Supporter, SuppressionReason
from campaign.people.services import supporter_from_unsubscribe_token, suppress, unsubscribe

_STATUS = re.compile(r"^\s*([245])\.\d{1,3}\.\d{1,3}")


@dataclass
class RecipientReport:
    address: str
    action: str
    status: str

    @property
    def is_hard_bounce(self) -> bool:
        match = _STATUS.match(self.status)
        return self.action == "failed" and bool(match) and match.group(1) == "5"


@dataclass
class BounceReport:
    is_dsn: bool
    original_message_id: str | None = None
    recipients: list[RecipientReport] = field(default_factory=list)


def _field_blocks(part: Message) -> list[Message]:
    """The header blocks of a message/delivery-status part: one per-message, then one
    per recipient. The email package exposes them as sub-messages."""
    payload = part.get_payload()
    if isinstance(payload, list):
        return payload
    # Some parsers leave the body as text: split it into blank-line separated blocks.
    from email.parser import HeaderParser

    text = payload if isinstance(payload, str) else ""
    return [HeaderParser().parsestr(block) for block in re.split(r"\r?\n\r?\n", text) if block]


def _address(value: str | None) -> str:
    """'rfc822; someone@example.org' → 'someone@example.org'."""
    if not value:
        return ""
    return value.split(";", 1)[-1].strip().strip("<>").lower()


def parse_bounce(raw: bytes) -> BounceReport:
    """What a message says about delivery failures (empty when it is not a DSN)."""
    message: EmailMessage = message_from_bytes(raw, policy=policy.default)
    if (
        message.get_content_type() != "multipart/report"
        or (message.get_param("report-type", "") or "").lower() != "delivery-status"
    ):
        return BounceReport(is_dsn=False)
    report = BounceReport(is_dsn=True)
    for part in message.walk():
        content_type = part.get_content_type()
        if content_type == "message/delivery-status":
            for block in _field_blocks(part)[1:]:
                recipient = _address(
                    block.get("Final-Recipient") or block.get("Original-Recipient")
                )
                if recipient:
                    report.recipients.append(
                        RecipientReport(
                            address=recipient,
                            action=(block.get("Action") or "").strip().lower(),
                            status=(block.get("Status") or "").strip(),
                        )
                    )
        elif content_type in ("message/rfc822", "text/rfc822-headers"):
            original = part.get_payload()
            if isinstance(original, list):
                original = original[0]
            if isinstance(original, Message):
                message_id = original.get("Message-ID")
            else:
                found = re.search(r"^Message-ID:\s*(<[^>]+>)", str(original), re.I | re.M)
                message_id = found.group(1) if found else None
            if message_id:
                report.original_message_id = message_id.strip()
    return report


@dataclass
class IngestResult:
    messages: int = 0
    not_dsn: int = 0
    hard_bounces: int = 0
    soft: int = 0
    unsubscribed: int = 0


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


def ingest_bounce(raw: bytes, result: IngestResult | None = None) -> IngestResult:
    """Apply one message: suppress hard-bounced addresses. Flushes, never commits."""
    result = result or IngestResult()
    result.messages += 1
    report = parse_bounce(raw)
    if not report.is_dsn:
        if _unsubscribe_request(raw):
            result.unsubscribed += 1
        else:
            result.not_dsn += 1
        db.session.flush()
        return result
    original = None
    if report.original_message_id:
        original = db.session.scalar(
            select(OutboxMessage).where(OutboxMessage.message_id == report.original_message_id)
        )
    for recipient in report.recipients:
        if not recipient.is_hard_bounce:
            result.soft += 1
            continue
        result.hard_bounces += 1
        detail = f"bounce {recipient.status}"
        if original is not None and original.to_addr == recipient.address:
            original.status = OutboxStatus.FAILED
            original.last_error = detail
        for group_id in _groups_to_suppress(original, recipient.address):
            suppress(group_id, recipient.address, SuppressionReason.HARD_BOUNCE, detail)
    db.session.flush()
    return result


def _groups_to_suppress(original: OutboxMessage | None, address: str) -> set[int]:
    """The group whose mail bounced; if the message is unknown, every group that holds
    the address (a dead mailbox is dead for all of them)."""
    if original is not None and original.group_id is not None:
        return {original.group_id}
    return set(db.session.scalars(select(Supporter.group_id).where(Supporter.email == address)))


@permanent_failure.connect
def _suppress_refused_address(_sender: object, row: OutboxMessage, **_extra: object) -> None:
    """The relay refused an address outright (5xx at send time): the group stops mailing it."""
    if row.group_id is not None:
        suppress(row.group_id, row.to_addr, SuppressionReason.HARD_BOUNCE, row.last_error or "")
