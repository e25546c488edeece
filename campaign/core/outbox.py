"""The one way mail leaves the platform: rows in an outbox, delivered after commit.

``queue_email()`` writes one ``OutboxMessage`` row per recipient in the caller's
transaction, so a rolled-back change never sends mail. When the transaction commits,
delivery is dispatched (a Celery task on a broker in production; in-process at the end
of the request in the embedded default). ``deliver_due()`` claims rows with a lease,
sends them over one reused connection and marks each one sent straight after the relay
accepts it, so a crash can repeat at most the one message in flight, which carries the
Message-ID fixed at queue time.

The outbox lives in ``core`` because every capability, accounts included, sends mail;
the ``mailing`` capability builds lists and campaigns on top of it.
"""

from __future__ import annotations

import enum
import smtplib
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import formataddr, make_msgid, parseaddr
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import current_app, render_template
from sqlalchemy import event, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from campaign.core.models import TimestampedModel, UTCDateTime, utcnow
from campaign.extensions import db, mail


class MailCategory(enum.StrEnum):
    TRANSACTIONAL = "transactional"  # account and action mail the person asked for
    STRANGER = "stranger"  # triggered by a public form: rate-limited per address
    MARKETING = "marketing"  # campaign mail to people who opted in


class OutboxStatus(enum.StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    SKIPPED = "skipped"


PRIORITY = {MailCategory.TRANSACTIONAL: 10, MailCategory.STRANGER: 10, MailCategory.MARKETING: 50}
MAX_ATTEMPTS = 6


class OutboxMessage(TimestampedModel):
    """One email to one recipient, from queued to sent (or failed)."""

    __tablename__ = "outbox_messages"
    __table_args__ = (sa.Index("ix_outbox_due", "status", "priority", "next_attempt_at"),)

    to_addr: Mapped[str] = mapped_column(sa.String(320), index=True)
    from_addr: Mapped[str] = mapped_column(sa.String(320))
    subject: Mapped[str] = mapped_column(sa.String(300))
    text_body: Mapped[str] = mapped_column(sa.Text)
    html_body: Mapped[str | None] = mapped_column(sa.Text)
    headers: Mapped[dict[str, str]] = mapped_column(sa.JSON, default=dict)
    message_id: Mapped[str] = mapped_column(sa.String(255), unique=True)
    category: Mapped[str] = mapped_column(sa.String(20))
    template: Mapped[str] = mapped_column(sa.String(100))
    priority: Mapped[int] = mapped_column(default=50)
    status: Mapped[str] = mapped_column(sa.String(20), default=OutboxStatus.QUEUED)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(sa.String(500))
    group_id: Mapped[int | None] = mapped_column(index=True)
    # Set for campaign mail: which mailing and which supporter (plain ids: core knows
    # nothing of the capabilities above it).
    mailing_id: Mapped[int | None] = mapped_column(index=True)
    supporter_id: Mapped[int | None] = mapped_column(index=True)


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
    **context: Any,
) -> OutboxMessage | None:
    """Render ``templates/email/<template>.{txt,html,subject}`` and queue it for ``to``.

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
    sender = current_app.config["MAIL_DEFAULT_SENDER"]
    row = OutboxMessage(
        to_addr=address,
        from_addr=sender,
        subject=" ".join(subject.split())[:300],
        text_body=text,
        html_body=html,
        headers=headers or {},
        message_id=make_msgid(domain=_sender_domain(sender)),
        category=category,
        template=template,
        priority=PRIORITY[category],
        group_id=group_id,
        mailing_id=mailing_id,
        supporter_id=supporter_id,
        next_attempt_at=utcnow(),
    )
    session.add(row)
    session.flush()
    session.info["outbox_pending"] = True
    return row


def _sender_domain(sender: str) -> str:
    address = parseaddr(sender)[1]
    return address.rpartition("@")[2] or "localhost"


@event.listens_for(Session, "after_commit")
def _note_committed_mail(session: Session) -> None:
    """Mail queued in a committed transaction is ready to dispatch (no SQL allowed here)."""
    if session.info.pop("outbox_pending", False):
        session.info["outbox_committed"] = True


@event.listens_for(Session, "after_rollback")
def _forget_rolled_back_mail(session: Session) -> None:
    session.info.pop("outbox_pending", None)


def dispatch_if_committed() -> None:
    """Start delivery for mail committed in this unit of work (call after commit)."""
    session = db.session
    if not session.info.pop("outbox_committed", False):
        return
    if current_app.config.get("CELERY_BROKER_URL"):
        # This app's own Celery instance, not whichever one was created last.
        current_app.extensions["celery"].send_task("campaign.deliver_outbox")
    else:
        deliver_due()


def build_message(row: OutboxMessage) -> EmailMessage:
    """The MIME message for a row: text, plus an HTML alternative when there is one."""
    msg = EmailMessage()
    msg["Subject"] = row.subject
    msg["From"] = row.from_addr
    msg["To"] = formataddr(("", row.to_addr))
    msg["Message-ID"] = row.message_id
    msg["Date"] = row.created_at.strftime("%a, %d %b %Y %H:%M:%S +0000")
    for name, value in (row.headers or {}).items():
        msg[name] = value
    # Quoted-printable keeps every line under SMTP's 998-character limit.
    msg.set_content(row.text_body, cte="quoted-printable")
    if row.html_body:
        msg.add_alternative(row.html_body, subtype="html", cte="quoted-printable")
    return msg


class _FileTransport:
    """Writes each message as an .eml file: the embedded default's 'relay'."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    def send(self, row: OutboxMessage, msg: EmailMessage) -> None:
        stamp = row.created_at.strftime("%Y%m%dT%H%M%S")
        path = self.directory / f"{stamp}-{row.id:08d}.eml"
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(bytes(msg))
        tmp.replace(path)

    def close(self) -> None:
        pass


class _SMTPTransport:
    """One reused SMTP connection for a whole batch."""

    def __init__(self) -> None:
        self.connection = mail.connect()
        self.connection.mail.suppress = False
        self.host = self.connection.configure_host()

    def send(self, row: OutboxMessage, msg: EmailMessage) -> None:
        envelope_from = parseaddr(row.from_addr)[1]
        self.host.send_message(msg, from_addr=envelope_from, to_addrs=[row.to_addr])

    def close(self) -> None:
        try:
            self.host.quit()
        except smtplib.SMTPException:
            self.host.close()


def mail_file_dir() -> Path:
    configured = current_app.config.get("MAIL_FILE_DIR")
    return Path(configured) if configured else Path(current_app.instance_path) / "mail"


def _transport() -> _FileTransport | _SMTPTransport:
    if current_app.config["MAIL_BACKEND"] == "file":
        return _FileTransport(mail_file_dir())
    return _SMTPTransport()


def _claim_batch(session: Session, limit: int) -> list[OutboxMessage]:
    now = utcnow()
    due = (
        select(OutboxMessage)
        .where(
            sa.or_(
                sa.and_(
                    OutboxMessage.status == OutboxStatus.QUEUED,
                    OutboxMessage.next_attempt_at <= now,
                ),
                # A worker that died mid-send leaves its lease behind; take it over.
                sa.and_(
                    OutboxMessage.status == OutboxStatus.SENDING,
                    OutboxMessage.lease_until < now,
                ),
            )
        )
        .order_by(OutboxMessage.priority, OutboxMessage.id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    rows = list(session.scalars(due))
    for row in rows:
        row.status = OutboxStatus.SENDING
        row.lease_until = now + timedelta(seconds=current_app.config["MAIL_LEASE_SECONDS"])
    session.commit()
    return rows


def _is_transient(exc: Exception) -> bool:
    if isinstance(exc, smtplib.SMTPResponseException):
        return 400 <= exc.smtp_code < 500
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return all(400 <= code < 500 for code, _ in exc.recipients.values())
    return isinstance(exc, OSError | smtplib.SMTPServerDisconnected)


def deliver_due(batch_size: int | None = None) -> dict[str, int]:
    """Send every due row, batch by batch; returns counts. Owns its transactions."""
    session = db.session
    batch_size = batch_size or current_app.config["MAIL_BATCH_SIZE"]
    session.commit()
    counts = {"sent": 0, "retry": 0, "failed": 0}
    while True:
        rows = _claim_batch(session, batch_size)
        if not rows:
            break
        transport = None
        try:
            transport = _transport()
            for row in rows:
                try:
                    transport.send(row, build_message(row))
                except Exception as exc:  # noqa: BLE001 - classified below
                    _record_failure(row, exc, counts)
                else:
                    row.status = OutboxStatus.SENT
                    row.sent_at = utcnow()
                    row.lease_until = None
                    row.attempts += 1
                    counts["sent"] += 1
                session.commit()
        except (OSError, smtplib.SMTPException) as exc:
            # The relay is unreachable: put the unsent rows back for a later attempt.
            for row in rows:
                if row.status == OutboxStatus.SENDING:
                    _record_failure(row, exc, counts)
            session.commit()
            break
        finally:
            if transport is not None:
                transport.close()
    return counts


def _record_failure(row: OutboxMessage, exc: Exception, counts: dict[str, int]) -> None:
    row.attempts += 1
    row.last_error = f"{type(exc).__name__}: {exc}"[:500]
    row.lease_until = None
    if _is_transient(exc) and row.attempts < MAX_ATTEMPTS:
        row.status = OutboxStatus.QUEUED
        row.next_attempt_at = utcnow() + timedelta(minutes=2**row.attempts)
        counts["retry"] += 1
    else:
        row.status = OutboxStatus.FAILED
        counts["failed"] += 1
    current_app.logger.warning("mail to outbox row %s not sent: %s", row.id, row.last_error)
