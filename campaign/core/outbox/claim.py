"""Claiming due rows with a lease, and marking them sent."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from campaign.core.models import UTCDateTime, utcnow
from campaign.core.outbox.models import OutboxMessage, OutboxStatus


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
