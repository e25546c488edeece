"""Who owns a row while it is being sent: claims, leases, heartbeats.

A worker claims a batch of due rows under a random token. Every later write to those
rows (sent, back to the queue, failed) is a conditional UPDATE ``WHERE claim_token =
mine AND status = 'sending'``: a worker that lost its claim (its lease ran out, or its
heartbeat stopped and another worker took the rows over) changes nothing, and says so
in the log. Rows are read as plain rows, never as ORM objects, so no stale copy can be
written back.

A claim is renewed as sending goes on (lease and heartbeat, every few seconds), so a
batch may take longer than one lease. Rows whose claimant stopped renewing for three
heartbeat intervals, or whose lease ran out, may be taken over; the one that was in
flight when its worker stopped is marked ``possible_repeat``: it may have reached the
relay before the worker died.
"""

from __future__ import annotations

import functools
import os
import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import Session

from campaign.core.models import UTCDateTime, utcnow
from campaign.core.outbox.models import OutboxMessage, OutboxStatus
from campaign.core.outbox.throttle import paused_lanes_query

_t = OutboxMessage.__table__
SENDING = OutboxStatus.SENDING.value

# What a sender needs of a row; read as plain rows (attribute access), not ORM objects.
SEND_COLUMNS = (
    _t.c.id,
    _t.c.to_addr,
    _t.c.from_addr,
    _t.c.subject,
    _t.c.text_body,
    _t.c.html_body,
    _t.c.headers,
    _t.c.message_id,
    _t.c.calendar,
    _t.c.created_at,
    _t.c.attempts,
    _t.c.lane,
    _t.c.group_id,
)


# Key in ``Session.info``: an autocommit connection for the "sent" marks, when the
# delivery run has one (PostgreSQL outside the test suite).
MARKS_CONNECTION = "outbox_marks_connection"


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"[:100]


def heartbeat_seconds() -> float:
    return float(current_app.config["MAIL_HEARTBEAT_SECONDS"])


def stale_before(now: datetime) -> datetime:
    """A claimant whose heartbeat is older than this is taken to be gone."""
    return now - timedelta(seconds=3 * heartbeat_seconds())


def _lapsed(now: datetime) -> sa.ColumnElement[bool]:
    return sa.and_(
        _t.c.status == SENDING,
        sa.or_(
            _t.c.lease_until < now,
            _t.c.heartbeat_at < stale_before(now),
            _t.c.heartbeat_at.is_(None),
        ),
    )


@dataclass
class Claim:
    """One worker's batch: its token and the rows it still owns."""

    token: str
    worker: str
    rows: list[Any] = field(default_factory=list)
    owned: set[int] = field(default_factory=set)


def _claim_ids(session: Session, query: sa.Select, claim: Claim, now: datetime, **extra) -> int:
    postgres = session.get_bind().dialect.name == "postgresql"
    if postgres:
        query = query.with_for_update(skip_locked=True)
    lease_until = now + timedelta(seconds=current_app.config["MAIL_LEASE_SECONDS"])
    result = session.connection().execute(
        sa.update(_t)
        .where(_t.c.id.in_(query.scalar_subquery()))
        .values(
            status=SENDING,
            claim_token=claim.token,
            claimed_by=claim.worker,
            lease_until=lease_until,
            heartbeat_at=now,
            **extra,
        )
        .execution_options(synchronize_session=False)
    )
    return result.rowcount


def claim_batch(session: Session, limit: int) -> Claim:
    """Take up to ``limit`` due rows: first any whose claimant is gone, then queued ones by
    priority; never rows in a paused lane. One transaction, committed here.

    Each statement is an ``UPDATE ... WHERE id IN (SELECT ... LIMIT n)`` (with ``FOR
    UPDATE SKIP LOCKED`` on PostgreSQL, so two workers never wait for or take the same
    rows; on SQLite the UPDATE holds the write lock)."""
    now = utcnow()
    claim = Claim(token=secrets.token_hex(16), worker=worker_name())
    paused = paused_lanes_query(now)
    lapsed = _lapsed(now)
    # The row in flight when a claimant stopped is the first unsent one of its claim
    # (a batch is sent in id order): flag it, it may already have been delivered.
    firsts = select(sa.func.min(_t.c.id)).where(lapsed).group_by(_t.c.claim_token)
    session.connection().execute(
        sa.update(_t)
        .where(_t.c.id.in_(firsts.scalar_subquery()), _t.c.lane.not_in(paused))
        .values(possible_repeat=True)
        .execution_options(synchronize_session=False)
    )
    taken = _claim_ids(
        session,
        select(_t.c.id).where(lapsed, _t.c.lane.not_in(paused)).order_by(_t.c.id).limit(limit),
        claim,
        now,
    )
    if taken:
        current_app.logger.warning(
            "took over %d outbox rows whose worker stopped renewing its claim", taken
        )
    if taken < limit:
        _claim_ids(
            session,
            select(_t.c.id)
            .where(
                _t.c.status == OutboxStatus.QUEUED.value,
                _t.c.next_attempt_at <= now,
                _t.c.lane.not_in(paused),
            )
            .order_by(_t.c.priority, _t.c.id)
            .limit(limit - taken),
            claim,
            now,
        )
    claim.rows = list(
        session.connection().execute(
            select(*SEND_COLUMNS)
            .where(_t.c.claim_token == claim.token, _t.c.status == SENDING)
            .order_by(_t.c.id)
        )
    )
    claim.owned = {row.id for row in claim.rows}
    session.commit()
    return claim


_RENEW = (
    sa.update(_t)
    .where(_t.c.claim_token == sa.bindparam("token"), _t.c.status == SENDING)
    .values(
        lease_until=sa.bindparam("lease_until", type_=UTCDateTime()),
        heartbeat_at=sa.bindparam("now", type_=UTCDateTime()),
    )
)


def renew(session: Session, claim: Claim, unsent: int) -> None:
    """Extend the lease and beat the heart for every row still ours; notice rows another
    worker took over (they are dropped from this batch). Commits."""
    now = utcnow()
    lease_until = now + timedelta(seconds=current_app.config["MAIL_LEASE_SECONDS"])
    count = (
        session.connection()
        .execute(_RENEW, {"token": claim.token, "lease_until": lease_until, "now": now})
        .rowcount
    )
    if count < unsent:
        claim.owned = set(
            session.connection().scalars(
                select(_t.c.id).where(_t.c.claim_token == claim.token, _t.c.status == SENDING)
            )
        )
        current_app.logger.warning(
            "claim %s lost %d rows to another worker; they are left alone",
            claim.token[:8], unsent - count,
        )  # fmt: skip
    session.commit()


_FLAG_REPEAT = sa.update(_t).where(_t.c.id == sa.bindparam("row_id")).values(possible_repeat=True)


@functools.cache
def _mark_sent_sql(dialect: sa.engine.Dialect) -> tuple[str, Callable[[Any], Any]]:
    """``_MARK_SENT`` compiled once for the DB-API cursor, and the timestamp converter."""
    marker = "?" if dialect.paramstyle == "qmark" else "%s"
    sql = (
        f"UPDATE outbox_messages SET status = '{OutboxStatus.SENT.value}', "  # noqa: S608 - constants only
        f"sent_at = {marker}, updated_at = {marker}, lease_until = NULL, "
        f"attempts = attempts + 1 WHERE id = {marker} AND claim_token = {marker} "
        f"AND status = '{SENDING}'"
    )
    convert = UTCDateTime().bind_processor(dialect) or (lambda value: value)
    return sql, convert


def mark_sent(session: Session, claim: Claim, row_id: int) -> bool:
    """Record the relay's 250 at once: one UPDATE, prepared once and run on the DB-API
    cursor inside the session's transaction (the per-statement work of the SQL layer
    was a large part of a message's cost). False when the claim was lost meanwhile:
    the row is left to its new owner, flagged as a possible repeat (it is being sent
    twice), and logged."""
    marks = session.info.get(MARKS_CONNECTION)
    connection = marks if marks is not None else session.connection()
    sql, convert = _mark_sent_sql(connection.dialect)
    now = convert(utcnow())
    cursor = connection.connection.cursor()
    try:
        cursor.execute(sql, (now, now, row_id, claim.token))
        done = cursor.rowcount
    finally:
        cursor.close()
    claim.owned.discard(row_id)
    if not done:
        session.connection().execute(_FLAG_REPEAT, {"row_id": row_id})
        claim.owned.discard(row_id)
        current_app.logger.warning(
            "outbox row %s was delivered after its claim was lost; flagged as a possible repeat",
            row_id,
        )
    return bool(done)


def release(
    session: Session, claim: Claim, row_id: int, *, status: str, error: str, **values: Any
) -> bool:
    """Put one of our rows back in the queue or mark it failed, only if it is still ours."""
    done = (
        session.connection()
        .execute(
            sa.update(_t)
            .where(_t.c.id == row_id, _t.c.claim_token == claim.token, _t.c.status == SENDING)
            .values(
                status=status,
                lease_until=None,
                last_error=error[:500],
                updated_at=utcnow(),
                **values,
            )
        )
        .rowcount
    )
    claim.owned.discard(row_id)
    if not done:
        current_app.logger.warning(
            "outbox row %s: claim lost before it could be released; left alone", row_id
        )
    return bool(done)


def release_lane(
    session: Session, claim: Claim, lane: str | None, *, until: datetime, error: str
) -> int:
    """Return every row of ours in ``lane`` (all lanes when None) to the queue, due again
    at ``until``. Returns how many."""
    conditions = [_t.c.claim_token == claim.token, _t.c.status == SENDING]
    if lane is not None:
        conditions.append(_t.c.lane == lane)
    ids = set(session.connection().scalars(select(_t.c.id).where(*conditions)))
    if not ids:
        return 0
    count = (
        session.connection()
        .execute(
            sa.update(_t)
            .where(*conditions)
            .values(
                status=OutboxStatus.QUEUED.value,
                lease_until=None,
                next_attempt_at=until,
                last_error=error[:500],
                updated_at=utcnow(),
            )
        )
        .rowcount
    )
    claim.owned -= ids
    return count


def stalled_claims(session: Session) -> int:
    """Rows being sent whose claimant has not renewed for more than one heartbeat and a
    half: a worker may have died, and they become free soon."""
    since = utcnow() - timedelta(seconds=1.5 * heartbeat_seconds())
    return session.scalar(
        select(sa.func.count())
        .select_from(_t)
        .where(
            _t.c.status == SENDING, sa.or_(_t.c.heartbeat_at < since, _t.c.heartbeat_at.is_(None))
        )
    )


def possible_repeats(mailing_id: int) -> list[str]:
    """Recipients of a mailing who may have had two copies of it (same Message-ID): a
    worker stopped while their message was in flight, or lost its claim after sending."""
    from campaign.extensions import db

    return list(
        db.session.scalars(
            select(OutboxMessage.to_addr)
            .where(
                OutboxMessage.mailing_id == mailing_id,
                # Written as the partial index's own predicate, so the index serves it.
                OutboxMessage.possible_repeat,
                OutboxMessage.status == OutboxStatus.SENT,
            )
            .order_by(OutboxMessage.to_addr)
        )
    )
