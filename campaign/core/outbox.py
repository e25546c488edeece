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

import binascii
import enum
import hashlib
import smtplib
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.header import Header
from email.utils import formataddr, make_msgid, parseaddr
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from blinker import Namespace
from flask import current_app, render_template
from sqlalchemy import event, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column
from sqlalchemy.orm.attributes import set_committed_value

from campaign.core import erasure
from campaign.core.erasure import ErasureSubject
from campaign.core.models import Base, TimestampedModel, UTCDateTime, utcnow
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

# Sent with ``row=`` when a relay refuses a message for good (5xx): the people capability
# listens and suppresses the address for the group that sent it.
permanent_failure = Namespace().signal("outbox.permanent-failure")


class OutboxMessage(TimestampedModel):
    """One email to one recipient, from queued to sent (or failed)."""

    __tablename__ = "outbox_messages"
    __personal_data__ = True
    # Serves the claim query's "WHERE status = ... ORDER BY priority, id LIMIT n" straight
    # from the index, so a batch costs the same at the end of a 50,000 send as at the start.
    # ix_outbox_mailing_status serves a mailing's report: counts by status and the rows
    # not delivered, without reading the 100,000 that were; ix_outbox_supporter_mailing
    # its "unsubscribed since" (was this person sent this mailing?) from the index alone.
    __table_args__ = (
        sa.Index("ix_outbox_queue", "status", "priority", "id"),
        sa.Index("ix_outbox_mailing_status", "mailing_id", "group_id", "status", "id"),
        sa.Index("ix_outbox_supporter_mailing", "supporter_id", "mailing_id", "group_id"),
    )

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
    # An iCalendar invitation sent with the message (text/calendar), e.g. for an action.
    calendar: Mapped[str | None] = mapped_column(sa.Text)


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
        calendar=calendar,
        next_attempt_at=utcnow(),
    )
    session.add(row)
    session.flush()
    session.info["outbox_pending"] = True
    return row


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
    chunk_size: int = 500,
) -> int:
    """Queue already-rendered messages in the caller's transaction, in bulk; returns how many.

    ``template`` only labels the rows. Stranger-triggered mail must use ``queue_email``,
    which enforces the per-address daily limit.
    """
    if category == MailCategory.STRANGER:
        raise ValueError("stranger-triggered mail must be queued with queue_email()")
    session = db.session
    sender = current_app.config["MAIL_DEFAULT_SENDER"]
    domain = _sender_domain(sender)
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
                "headers": dict(message.headers),
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
    """Start delivery for mail committed in this unit of work (call after commit)."""
    session = db.session
    if not session.info.pop("outbox_committed", False):
        return
    if current_app.config.get("CELERY_BROKER_URL"):
        # This app's own Celery instance, not whichever one was created last.
        current_app.extensions["celery"].send_task("campaign.deliver_outbox")
    else:
        deliver_due()


def _header(name: str, value: str) -> bytes:
    """One header line. ASCII values go as written (List-Unsubscribe must stay readable to
    mail clients; no line we write comes near SMTP's 998 characters); others are
    RFC 2047 encoded-words."""
    value = " ".join(value.split())  # no line breaks smuggled in from data
    if not value.isascii():
        value = Header(value, "utf-8", header_name=name).encode(linesep="\r\n")
    return f"{name}: {value}\r\n".encode("ascii")


def _address_header(value: str) -> str:
    name, address = parseaddr(value)
    return formataddr((name, address), charset="utf-8")


def _text_part(body: str, subtype: str) -> bytes:
    """A text part, always quoted-printable: lines stay under 76 characters."""
    crlf = "\r\n".join(body.splitlines()) + "\r\n"
    encoded = binascii.b2a_qp(crlf.encode("utf-8"), istext=True)
    return (
        f'Content-Type: text/{subtype}; charset="utf-8"\r\n'
        "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
    ).encode("ascii") + encoded


def message_bytes(row: OutboxMessage) -> bytes:
    """The message as it goes on the wire: text, plus an HTML alternative when there is
    one, CRLF line ends.

    Written directly rather than through the email package's generator: its header
    folding dominated the time of a 50,000-recipient send (see bench/mail_bench.py).
    Tests parse the result with the email package.
    """
    head = b"".join(
        [
            _header("Subject", row.subject),
            _header("From", _address_header(row.from_addr)),
            _header("To", row.to_addr),
            _header("Message-ID", row.message_id),
            _header("Date", row.created_at.strftime("%a, %d %b %Y %H:%M:%S +0000")),
            *(_header(name, value) for name, value in (row.headers or {}).items()),
            b"MIME-Version: 1.0\r\n",
        ]
    )
    body = _body(row)
    if not row.calendar:
        return head + body
    # multipart/mixed: the message, then the invitation as an .ics attachment.
    boundary = "=_m" + hashlib.sha1(row.message_id.encode()).hexdigest()  # noqa: S324
    delimiter = f"--{boundary}\r\n".encode("ascii")
    invitation = binascii.b2a_base64(row.calendar.encode("utf-8"))
    lines = b"\r\n".join(invitation[i : i + 76] for i in range(0, len(invitation), 76))
    return b"".join(
        [
            head,
            f'Content-Type: multipart/mixed; boundary="{boundary}"\r\n\r\n'.encode(),
            delimiter,
            body,
            b"\r\n",
            delimiter,
            b'Content-Type: text/calendar; charset="utf-8"; method=PUBLISH\r\n'
            b'Content-Disposition: attachment; filename="invite.ics"\r\n'
            b"Content-Transfer-Encoding: base64\r\n\r\n",
            lines.rstrip(b"\r\n"),
            f"\r\n--{boundary}--\r\n".encode("ascii"),
        ]
    )


def _body(row: OutboxMessage) -> bytes:
    """The readable part: plain text, or text and HTML as alternatives (with headers)."""
    text = _text_part(row.text_body, "plain")
    if not row.html_body:
        return text
    boundary = "=_" + hashlib.sha1(row.message_id.encode()).hexdigest()  # noqa: S324
    delimiter = f"--{boundary}\r\n".encode("ascii")
    return b"".join(
        [
            f'Content-Type: multipart/alternative; boundary="{boundary}"\r\n\r\n'.encode(),
            delimiter,
            text,
            b"\r\n",
            delimiter,
            _text_part(row.html_body, "html"),
            f"\r\n--{boundary}--\r\n".encode("ascii"),
        ]
    )


class _FileTransport:
    """Writes each message as an .eml file: the embedded default's 'relay'."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    def send(self, row: OutboxMessage, raw: bytes) -> None:
        stamp = row.created_at.strftime("%Y%m%dT%H%M%S")
        path = self.directory / f"{stamp}-{row.id:08d}.eml"
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(raw)
        tmp.replace(path)

    def close(self) -> None:
        pass


class _SMTPTransport:
    """One reused SMTP connection for a whole batch."""

    def __init__(self) -> None:
        self.connection = mail.connect()
        self.connection.mail.suppress = False
        self.host = self.connection.configure_host()

    def send(self, row: OutboxMessage, raw: bytes) -> None:
        envelope_from = parseaddr(row.from_addr)[1]
        self.host.sendmail(envelope_from, [row.to_addr], raw)

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
    """Take up to ``limit`` due rows with a lease: first any whose worker died (lease
    run out), then queued ones by priority. Two queries, each served by an index."""
    now = utcnow()
    lapsed = (
        select(OutboxMessage)
        .where(OutboxMessage.status == OutboxStatus.SENDING, OutboxMessage.lease_until < now)
        .order_by(OutboxMessage.id)
        .limit(limit)
    )
    queued = (
        select(OutboxMessage)
        .where(OutboxMessage.status == OutboxStatus.QUEUED, OutboxMessage.next_attempt_at <= now)
        .order_by(OutboxMessage.priority, OutboxMessage.id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        lapsed = lapsed.with_for_update(skip_locked=True)
        queued = queued.with_for_update(skip_locked=True)
    rows = list(session.scalars(lapsed))
    if len(rows) < limit:
        rows += session.scalars(queued.limit(limit - len(rows)))
    lease_until = now + timedelta(seconds=current_app.config["MAIL_LEASE_SECONDS"])
    for row in rows:
        row.status = OutboxStatus.SENDING
        row.lease_until = lease_until
    session.commit()
    return rows


def _is_transient(exc: Exception) -> bool:
    if isinstance(exc, smtplib.SMTPResponseException):
        return 400 <= exc.smtp_code < 500
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return all(400 <= code < 500 for code, _ in exc.recipients.values())
    return isinstance(exc, OSError | smtplib.SMTPServerDisconnected)


def _is_throttling(exc: Exception) -> bool:
    """The relay, not one recipient, says 'not now': 421, a 4xx to MAIL or DATA, or a
    dropped connection. The whole send pauses. (A 4xx to one RCPT, such as greylisting,
    only delays that recipient.)"""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return False
    if isinstance(exc, smtplib.SMTPResponseException):
        return 400 <= exc.smtp_code < 500
    return isinstance(exc, OSError | smtplib.SMTPServerDisconnected)


class MailThrottle(Base):
    """Delivery's memory of a relay that asked us to slow down (one row, id 1)."""

    __tablename__ = "mail_throttle"

    id: Mapped[int] = mapped_column(primary_key=True)
    paused_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # None: as configured (MAIL_RATE_PER_SECOND, 0 = no cap); else the slower rate.
    rate_per_second: Mapped[float | None] = mapped_column(sa.Float)
    throttles: Mapped[int] = mapped_column(default=0)


def _throttle_state(session: Session) -> MailThrottle:
    state = session.get(MailThrottle, 1)
    if state is None:
        state = MailThrottle(id=1, throttles=0)
        session.add(state)
        try:
            session.commit()
        except sa.exc.IntegrityError:  # another worker made it first
            session.rollback()
            state = session.get(MailThrottle, 1)
    return state


class _Pacer:
    """Keeps sends under a rate (messages a second); no cap when the rate is 0."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate if rate else 0.0
        self.next_at = time.monotonic()
        self.started = time.monotonic()
        self.sent = 0

    def wait(self) -> None:
        if self.interval:
            delay = self.next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self.next_at = max(self.next_at, time.monotonic()) + self.interval

    def observed_rate(self) -> float:
        return self.sent / max(time.monotonic() - self.started, 0.001)


def deliver_due(batch_size: int | None = None) -> dict[str, int]:
    """Send every due row, batch by batch; returns counts. Owns its transactions.

    Each row is marked sent right after the relay accepts it. When the relay throttles,
    the unsent rows go back to the queue, delivery pauses (longer each time it happens
    again) and resumes at half the rate it had reached, speeding up again batch by batch.
    """
    session = db.session
    config = current_app.config
    batch_size = batch_size or config["MAIL_BATCH_SIZE"]
    session.commit()
    counts = {"sent": 0, "retry": 0, "failed": 0, "paused": 0}
    state = _throttle_state(session)
    if state.paused_until and state.paused_until > utcnow():
        counts["paused"] = 1
        return counts
    while True:
        rows = _claim_batch(session, batch_size)
        if not rows:
            break
        pacer = _Pacer(state.rate_per_second or config["MAIL_RATE_PER_SECOND"])
        transport = None
        try:
            transport = _transport()
            for row in rows:
                pacer.wait()
                try:
                    transport.send(row, message_bytes(row))
                except Exception as exc:  # noqa: BLE001 - classified below
                    if _is_throttling(exc):
                        raise _Throttled(exc) from exc
                    _record_failure(row, exc, counts)
                else:
                    _mark_sent(session, row)
                    counts["sent"] += 1
                    pacer.sent += 1
                session.commit()
        except (_Throttled, OSError, smtplib.SMTPException) as exc:
            cause = exc.cause if isinstance(exc, _Throttled) else exc
            _pause(state, rows, cause, pacer, counts)
            session.commit()
            break
        finally:
            if transport is not None:
                transport.close()
        _recover(state)
        session.commit()
    return counts


_MARK_SENT = (
    sa.update(OutboxMessage.__table__)
    .where(OutboxMessage.__table__.c.id == sa.bindparam("row_id"))
    .values(
        status=OutboxStatus.SENT.value,
        sent_at=sa.bindparam("now", type_=UTCDateTime()),
        lease_until=None,
        attempts=sa.bindparam("attempts"),
    )
)


def _mark_sent(session: Session, row: OutboxMessage) -> None:
    """Record the relay's 250 at once with one precompiled UPDATE (an ORM flush per row
    was the slowest step of a large send); the in-memory row is kept in step."""
    now = utcnow()
    session.connection().execute(
        _MARK_SENT, {"row_id": row.id, "now": now, "attempts": row.attempts + 1}
    )
    for name, value in (("status", OutboxStatus.SENT), ("sent_at", now),
                        ("lease_until", None), ("attempts", row.attempts + 1)):  # fmt: skip
        set_committed_value(row, name, value)


class _Throttled(Exception):
    def __init__(self, cause: Exception) -> None:
        super().__init__(str(cause))
        self.cause = cause


def _pause(
    state: MailThrottle,
    rows: list[OutboxMessage],
    cause: Exception,
    pacer: _Pacer,
    counts: dict[str, int],
) -> None:
    """The relay pushed back: requeue what is unsent and remember to go slower."""
    base = current_app.config["MAIL_THROTTLE_PAUSE_SECONDS"]
    state.throttles += 1
    pause = timedelta(seconds=base * 2 ** min(state.throttles - 1, 4))
    state.paused_until = utcnow() + pause
    current = state.rate_per_second or current_app.config["MAIL_RATE_PER_SECOND"] or 0
    observed = pacer.observed_rate() if pacer.sent else current or 1.0
    state.rate_per_second = max(0.2, min(observed, current or observed) / 2)
    error = f"{type(cause).__name__}: {cause}"[:500]
    for index, row in enumerate(r for r in rows if r.status == OutboxStatus.SENDING):
        if index == 0:
            row.attempts += 1  # the one the relay refused
        row.status = OutboxStatus.QUEUED
        row.lease_until = None
        row.next_attempt_at = state.paused_until
        row.last_error = error
        counts["retry"] += 1
    current_app.logger.warning(
        "relay throttled (%s): paused %s, then %.1f messages/s", error, pause,
        state.rate_per_second,
    )  # fmt: skip


def _recover(state: MailThrottle) -> None:
    """A batch went through cleanly: speed back up towards the configured rate."""
    state.throttles = 0
    if state.rate_per_second is None:
        return
    configured = current_app.config["MAIL_RATE_PER_SECOND"]
    state.rate_per_second *= 1.25
    if (configured and state.rate_per_second >= configured) or state.rate_per_second > 1000:
        state.rate_per_second = None


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
        if not _is_transient(exc):
            # A permanent refusal: capabilities that keep lists suppress the address.
            permanent_failure.send(current_app._get_current_object(), row=row)
    current_app.logger.warning("mail to outbox row %s not sent: %s", row.id, row.last_error)


# --- erasure and the data download --------------------------------------------------------


def _outbox_rows_of(subject: ErasureSubject) -> sa.ColumnElement[bool]:
    """A group's mail to the person: campaign mail by supporter id, the rest by address."""
    return sa.and_(
        OutboxMessage.group_id == subject.group_id,
        sa.or_(
            OutboxMessage.supporter_id == subject.supporter_id,
            OutboxMessage.to_addr == subject.email,
        ),
    )


def _erase_outbox(subject: ErasureSubject) -> None:
    """Mail waiting for them is dropped; every row loses address, content, headers
    (they carry the unsubscribe link), the relay's error text and the calendar file.
    Status, times and category stay, so the group's delivery figures stay true."""
    db.session.execute(
        sa.update(OutboxMessage)
        .where(_outbox_rows_of(subject))
        .values(
            to_addr=f"erased-{subject.supporter_id}@erased.invalid",
            subject="",
            text_body="",
            html_body=None,
            headers={},
            last_error=None,
            calendar=None,
            status=sa.case(
                (OutboxMessage.status == OutboxStatus.QUEUED, OutboxStatus.SKIPPED),
                else_=OutboxMessage.status,
            ),
        )
        .execution_options(synchronize_session=False)
    )  # fmt: skip


def _export_outbox(subject: ErasureSubject) -> dict[str, Any]:
    rows = db.session.execute(
        select(
            OutboxMessage.created_at, OutboxMessage.subject, OutboxMessage.category,
            OutboxMessage.status, OutboxMessage.sent_at,
        )
        .where(_outbox_rows_of(subject))
        .order_by(OutboxMessage.id)
    )  # fmt: skip
    return {
        "emails": [
            {
                "queued": row.created_at.isoformat(),
                "subject": row.subject,
                "kind": row.category,
                "status": row.status,
                "sent": row.sent_at.isoformat() if row.sent_at else None,
            }
            for row in rows
        ]
    }


erasure.register(
    "outbox", models=[OutboxMessage], erase=_erase_outbox, export=_export_outbox, order=10
)
