"""Queueing: rows written in the caller's transaction, dispatched after commit."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from email.utils import formataddr, make_msgid, parseaddr
from typing import Any

import sqlalchemy as sa
from flask import current_app, render_template
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from campaign.core.models import utcnow
from campaign.core.outbox.models import (
    PRIORITY,
    MailCategory,
    OutboxMessage,
    OutboxStatus,
    lane_for,
)
from campaign.extensions import db


def _recent_stranger_mail(session: Session, address: str) -> int:
    since = utcnow() - timedelta(days=1)
    return session.scalar(
        select(func.count(OutboxMessage.id)).where(
            OutboxMessage.to_addr == address,
            OutboxMessage.category == MailCategory.STRANGER,
            OutboxMessage.created_at >= since,
        )
    )


def queue_email(
    to: str,
    template: str,
    *,
    category: MailCategory = MailCategory.TRANSACTIONAL,
    group_id: int | None = None,
    mailing_id: int | None = None,
    supporter_id: int | None = None,
    headers: dict[str, str] | None = None,
    calendar: str | None = None,
    group_name: str | None = None,
    reply_to: str | None = None,
    **context: Any,
) -> OutboxMessage | None:
    """Render ``templates/email/<template>.{txt,html,subject}`` and queue it for ``to``.

    Mail on a group's behalf passes ``group_name`` (it is then from "<group> via <site>")
    and the group's contact address as ``reply_to``; core looks nothing up itself.

    Returns ``None`` when stranger-triggered mail to this address is over its daily
    limit: the caller's action still succeeds, the address is simply not mailed again.
    """
    session = db.session
    address = parseaddr(to)[1].lower()
    if category == MailCategory.STRANGER:
        limit = current_app.config["MAIL_STRANGER_DAILY_LIMIT"]
        if _recent_stranger_mail(session, address) >= limit:
            current_app.logger.info("stranger mail limit reached for an address; not queued")
            return None
    context.setdefault("site_name", current_app.config["SITE_NAME"])
    subject = render_template(f"email/{template}.subject.txt", **context).strip()
    text = render_template(f"email/{template}.txt", **context)
    html = render_template(f"email/{template}.html", **context)
    sender = sender_for(group_name)
    row = OutboxMessage(
        to_addr=address,
        from_addr=sender,
        subject=" ".join(subject.split())[:300],
        text_body=text,
        html_body=html,
        headers=_with_reply_to(headers, reply_to),
        message_id=make_msgid(domain=_sender_domain(sender)),
        category=category,
        template=template,
        priority=PRIORITY[category],
        group_id=group_id,
        mailing_id=mailing_id,
        supporter_id=supporter_id,
        calendar=calendar,
        next_attempt_at=utcnow(),
        lane=lane_for(category, group_id),
    )
    session.add(row)
    session.flush()
    session.info["outbox_pending"] = True
    return row


def sender_for(group_name: str | None) -> str:
    """The From header: the platform's sender, or for a group's mail
    ``"<group name> via <SITE_NAME>" <sender address>`` (the address stays ours, so the
    mail passes the relay's and the receiver's checks)."""
    sender = current_app.config["MAIL_DEFAULT_SENDER"]
    if not group_name:
        return sender
    name = " ".join(f"{group_name} via {current_app.config['SITE_NAME']}".split())
    if not name.isascii():
        return formataddr((name, parseaddr(sender)[1]))
    quoted = name.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{quoted}" <{parseaddr(sender)[1]}>'


def _with_reply_to(headers: dict[str, str] | None, reply_to: str | None) -> dict[str, str]:
    merged = dict(headers or {})
    if reply_to and "Reply-To" not in merged:
        merged["Reply-To"] = reply_to
    return merged


def _sender_domain(sender: str) -> str:
    address = parseaddr(sender)[1]
    return address.rpartition("@")[2] or "localhost"


@dataclass
class PreparedEmail:
    """A message whose subject and bodies the caller rendered itself.

    Campaign mail is the organiser's text merged per recipient: the mailing capability
    renders it once per mailing and fills in each recipient, instead of running the
    templates once per recipient.
    """

    to: str
    subject: str
    text_body: str
    html_body: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    supporter_id: int | None = None


def queue_prepared(
    messages: Iterable[PreparedEmail],
    *,
    template: str,
    category: MailCategory = MailCategory.MARKETING,
    group_id: int | None = None,
    mailing_id: int | None = None,
    group_name: str | None = None,
    reply_to: str | None = None,
    chunk_size: int = 500,
) -> int:
    """Queue already-rendered messages in the caller's transaction, in bulk; returns how many.

    ``template`` only labels the rows; ``group_name`` and ``reply_to`` are as for
    ``queue_email``. Stranger-triggered mail must use ``queue_email``,
    which enforces the per-address daily limit.
    """
    if category == MailCategory.STRANGER:
        raise ValueError("stranger-triggered mail must be queued with queue_email()")
    session = db.session
    sender = sender_for(group_name)
    domain = _sender_domain(sender)
    lane = lane_for(category, group_id)
    queued = 0
    chunk: list[dict[str, Any]] = []

    def flush_chunk() -> None:
        nonlocal queued, chunk
        if chunk:
            session.execute(sa.insert(OutboxMessage), chunk)
            queued += len(chunk)
            chunk = []

    for message in messages:
        now = utcnow()
        chunk.append(
            {
                "to_addr": parseaddr(message.to)[1].lower(),
                "from_addr": sender,
                "subject": " ".join(message.subject.split())[:300],
                "text_body": message.text_body,
                "html_body": message.html_body,
                "headers": _with_reply_to(message.headers, reply_to),
                "message_id": make_msgid(domain=domain),
                "category": category,
                "template": template,
                "priority": PRIORITY[category],
                "status": OutboxStatus.QUEUED,
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
                "updated_at": now,
                "group_id": group_id,
                "mailing_id": mailing_id,
                "supporter_id": message.supporter_id,
                "lane": lane,
                "possible_repeat": False,
            }
        )
        if len(chunk) >= chunk_size:
            flush_chunk()
    flush_chunk()
    if queued:
        session.info["outbox_pending"] = True
    return queued


@event.listens_for(Session, "after_commit")
def _note_committed_mail(session: Session) -> None:
    """Mail queued in a committed transaction is ready to dispatch (no SQL allowed here)."""
    if session.info.pop("outbox_pending", False):
        session.info["outbox_committed"] = True


@event.listens_for(Session, "after_rollback")
def _forget_rolled_back_mail(session: Session) -> None:
    session.info.pop("outbox_pending", None)


def dispatch_if_committed() -> None:
    """Start delivery for mail committed in this unit of work (call after commit).

    Never fails the caller: the change that queued the mail is already committed, so a
    broker that cannot be reached is logged and the beat job (``deliver_outbox``, every
    minute) delivers the mail later. Raising here would turn a done change into an error
    page, and the person's retry would make the change twice.
    """
    session = db.session
    if not session.info.pop("outbox_committed", False):
        return
    if current_app.config.get("CELERY_BROKER_URL"):
        try:
            # This app's own Celery instance, not whichever one was created last; one
            # quick retry only, so a broker that is down does not hold up the response.
            current_app.extensions["celery"].send_task(
                "campaign.deliver_outbox",
                retry=True,
                retry_policy={"max_retries": 1, "interval_start": 0, "interval_step": 0.2},
            )
        except Exception:  # noqa: BLE001 - any broker failure; the beat job delivers later
            current_app.logger.warning(
                "mail queued but the broker could not be reached; the beat job will deliver it",
                exc_info=True,
            )
    else:
        from campaign.core.outbox.deliver import deliver_due

        deliver_due()
