"""The delivery loop: claim a batch, send each row, act on the relay's answer.

What each answer does (DESIGN rule 14):

- 250 after DATA: the row is marked sent at once, conditional on our claim.
- 5xx to RCPT: that recipient failed for good; ``permanent_failure`` is sent (the
  ``people`` capability suppresses the address for the group).
- 4xx to RCPT: that recipient is retried later with a backoff; several in a row in
  one lane (``MAIL_RCPT_DEFERRALS_TO_PAUSE``) is throttling and pauses the lane.
- 421, or a 4xx to the greeting, MAIL FROM or DATA: throttling; the lane pauses and
  resumes at half the rate reached.
- 5xx to the greeting, AUTH, MAIL FROM or DATA: about our account, our sender or the
  message, not the recipient: the lane pauses, nobody is suppressed, and what the relay
  said is kept on the lane (``MailThrottle.last_error``) and on the rows.
- A disconnect: reconnect and carry on (relays cap messages per connection); not
  throttling.
- No SMTPUTF8 for an address that needs it: that row fails with the reason; nobody is
  suppressed.
- Anything unexpected (a Python exception): retried with a backoff, never suppresses.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import parseaddr
from typing import Any

import sqlalchemy as sa
from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import Session

from campaign.core.addresses import envelope_address
from campaign.core.models import utcnow
from campaign.core.outbox.claim import (
    MARKS_CONNECTION,
    Claim,
    claim_batch,
    heartbeat_seconds,
    mark_sent,
    release,
    release_lane,
    renew,
)
from campaign.core.outbox.mime import message_bytes
from campaign.core.outbox.models import (
    MAX_ATTEMPTS,
    OutboxMessage,
    OutboxStatus,
    permanent_failure,
)
from campaign.core.outbox.throttle import (
    Pacer,
    PauseKind,
    lane_state,
    pause_lane,
    paused_lanes_query,
    recover_lane,
    slowest_rate,
)
from campaign.core.outbox.transport import Outcome, Result, make_transport
from campaign.extensions import db

_t = OutboxMessage.__table__


@dataclass
class _Lane:
    name: str
    pacer: Pacer
    deferrals: int = 0  # 4xx to RCPT in a row
    sent: int = 0
    paused: bool = False


@dataclass
class _Run:
    session: Session
    claim: Claim
    transport: Any
    counts: dict[str, int]
    lanes: dict[str, _Lane] = field(default_factory=dict)
    senders: dict[str, str] = field(default_factory=dict)
    next_row: Any = None
    built: dict[int, bytes] = field(default_factory=dict)

    def build_next(self) -> None:
        """Build the next row's message while the relay takes in this one."""
        row = self.next_row
        if row is not None and row.id in self.claim.owned:
            # A row whose message cannot be built is built again, and reported, in its turn.
            with contextlib.suppress(Exception):
                self.built[row.id] = message_bytes(row)

    def lane(self, name: str) -> _Lane:
        lane = self.lanes.get(name)
        if lane is None:
            state = lane_state(self.session, name)
            rate = state.rate_per_second or current_app.config["MAIL_RATE_PER_SECOND"]
            lane = self.lanes[name] = _Lane(name, Pacer(rate))
        return lane

    def envelope_from(self, from_addr: str) -> str:
        sender = self.senders.get(from_addr)
        if sender is None:
            sender = self.senders[from_addr] = parseaddr(from_addr)[1]
        return sender


def deliver_due(batch_size: int | None = None) -> dict[str, int]:
    """Send every due row, batch by batch, over one reused connection; returns counts
    (``paused``: lanes held back with mail waiting). Owns its transactions."""
    db.session.commit()
    with _delivery_session() as session:
        counts = _deliver(session, batch_size or current_app.config["MAIL_BATCH_SIZE"])
    return counts


@contextmanager
def _delivery_session() -> Iterator[Session]:
    """A session on one database connection held for the whole run.

    Each row is its own small transaction, so checking a pooled connection out and back
    in (with its pre-ping) for every row would cost more than the row. On PostgreSQL
    the "sent" marks are autocommitted UPDATEs on a second held connection that do not
    wait for the WAL flush (``synchronous_commit = off``): a worker that dies still
    loses nothing committed;
    only a crash of the database server itself could forget the last fraction of a
    second of "sent" marks, and those few messages would go again with the same
    Message-ID. When the app's session is already bound to a connection (the test
    suite's), that session is used as it is.
    """
    bind = db.session.get_bind()
    if not isinstance(bind, sa.engine.Engine):
        yield db.session
        return
    postgres = bind.dialect.name == "postgresql"
    with contextlib.ExitStack() as stack:
        connection = stack.enter_context(bind.connect())
        session = Session(bind=connection, expire_on_commit=False)
        stack.callback(session.close)
        if postgres:
            # "Sent" marks go on a second connection in autocommit: one round trip
            # each (the UPDATE is its own transaction) instead of UPDATE then COMMIT.
            marks = stack.enter_context(
                bind.connect().execution_options(isolation_level="AUTOCOMMIT")
            )
            marks.exec_driver_sql("SET synchronous_commit TO OFF")
            stack.callback(marks.exec_driver_sql, "RESET synchronous_commit")
            session.info[MARKS_CONNECTION] = marks
        yield session


def _deliver(session: Session, batch_size: int) -> dict[str, int]:
    session.commit()
    counts = {"sent": 0, "retry": 0, "failed": 0, "paused": 0}
    transport = None
    try:
        while True:
            claim = claim_batch(session, _batch_limit(session, batch_size))
            if not claim.rows:
                break
            if transport is None:
                transport = make_transport()
            _send_batch(_Run(session, claim, transport, counts))
    finally:
        if transport is not None:
            transport.close()
        session.rollback()
    counts["paused"] = _paused_lanes_with_mail(session)
    session.commit()
    return counts


def _batch_limit(session: Session, batch_size: int) -> int:
    """No more rows than fit in one lease at the slowest rate we are held to: a claim
    is renewed as it goes, but a batch should not depend on that."""
    rate = slowest_rate(session)
    if not rate:
        return batch_size
    lease = current_app.config["MAIL_LEASE_SECONDS"]
    return max(1, min(batch_size, int(rate * lease / 2)))


def _paused_lanes_with_mail(session: Session) -> int:
    return session.scalar(
        select(sa.func.count(sa.distinct(_t.c.lane))).where(
            _t.c.status == OutboxStatus.QUEUED.value, _t.c.lane.in_(paused_lanes_query(utcnow()))
        )
    )


def _send_batch(run: _Run) -> None:
    session, claim = run.session, run.claim
    config = current_app.config
    renew_every = min(heartbeat_seconds(), config["MAIL_LEASE_SECONDS"] / 3)
    last_renewal = time.monotonic()
    for position, row in enumerate(claim.rows):
        run.next_row = claim.rows[position + 1] if position + 1 < len(claim.rows) else None
        if row.id not in claim.owned:
            continue  # released with its lane, or taken over by another worker
        if time.monotonic() - last_renewal >= renew_every:
            renew(session, claim, unsent=len(claim.owned))
            last_renewal = time.monotonic()
            if row.id not in claim.owned:
                continue
        lane = run.lane(row.lane)
        lane.pacer.wait()
        result = _attempt(run, row)
        for _again in range(RECONNECTS):
            if result.outcome is not Outcome.DISCONNECTED:
                break
            # The relay hung up (a per-connection cap, an idle timeout): reconnect and
            # send this row again. Hung up after our DATA, it may already have it. A
            # hang-up can also be noticed only on the next command, so try a few times.
            if result.phase == "DATA":
                _flag_possible_repeat(session, row.id)
            result = _attempt(run, row)
        _act_on(run, row, lane, result)
        session.commit()
    # Anything still ours (nothing, normally) goes back to the queue.
    release_lane(session, claim, None, until=utcnow(), error="not attempted in its batch")
    for lane in run.lanes.values():
        if lane.sent and not lane.paused:
            recover_lane(lane_state(session, lane.name))
    session.commit()


# Reconnections tried for one row after the relay hung up, before it waits for a retry.
RECONNECTS = 3


def _attempt(run: _Run, row: Any) -> Result:
    try:
        raw = run.built.pop(row.id, None) or message_bytes(row)
        to, utf8 = envelope_address(row.to_addr)
        return run.transport.send(
            row, run.envelope_from(row.from_addr), to, raw, utf8 or not raw.isascii(),
            while_waiting=run.build_next,
        )  # fmt: skip
    except Exception as exc:  # noqa: BLE001 - never lose the row over our own bug
        current_app.logger.exception("outbox row %s: unexpected error while sending", row.id)
        run.transport.reset()
        return Result(Outcome.ERROR, "", 0, f"{type(exc).__name__}: {exc}")


def _act_on(run: _Run, row: Any, lane: _Lane, result: Result) -> None:
    outcome = result.outcome
    if outcome is Outcome.SENT:
        if mark_sent(run.session, run.claim, row.id):
            run.counts["sent"] += 1
            lane.sent += 1
            lane.pacer.sent += 1
        lane.deferrals = 0
    elif outcome is Outcome.RECIPIENT_REFUSED:
        lane.deferrals = 0
        _fail(run, row, result.describe(), suppress=True)
    elif outcome is Outcome.NEEDS_SMTPUTF8:
        _fail(run, row, result.describe(), suppress=False)
    elif outcome is Outcome.RECIPIENT_DEFERRED:
        lane.deferrals += 1
        if lane.deferrals >= current_app.config["MAIL_RCPT_DEFERRALS_TO_PAUSE"]:
            reason = f"{lane.deferrals} recipients in a row deferred; last: {result.describe()}"
            _pause(run, row, lane, PauseKind.THROTTLED, reason)
        else:
            _retry(run, row, result.describe())
    elif outcome is Outcome.THROTTLED:
        _pause(run, row, lane, PauseKind.THROTTLED, result.describe())
    elif outcome is Outcome.REFUSED:
        _pause(run, row, lane, PauseKind.REFUSED, result.describe())
    elif outcome is Outcome.UNREACHABLE:
        # The relay cannot be reached at all: every lane in this batch waits.
        for name in {r.lane for r in run.claim.rows if r.id in run.claim.owned}:
            _pause(run, row, run.lane(name), PauseKind.UNREACHABLE, result.describe())
    else:  # a second disconnect in a row, or an unexpected error
        _retry(run, row, result.describe())


def _pause(run: _Run, row: Any, lane: _Lane, kind: str, reason: str) -> None:
    """Hold the lane back and return its rows to the queue, due when the pause ends; the
    row the relay answered counts one attempt. Nobody is suppressed."""
    session, claim = run.session, run.claim
    state = lane_state(session, lane.name)
    until = pause_lane(state, kind, reason, lane.pacer)
    lane.paused = True
    if row.id in claim.owned and row.lane == lane.name:
        release(
            session,
            claim,
            row.id,
            status=OutboxStatus.QUEUED.value,
            error=reason,
            next_attempt_at=until,
            attempts=_t.c.attempts + 1,
        )
        run.counts["retry"] += 1
    run.counts["retry"] += release_lane(session, claim, lane.name, until=until, error=reason)


def _retry(run: _Run, row: Any, error: str) -> None:
    """Try this row again later (2, 4, 8... minutes); after ``MAX_ATTEMPTS`` it fails,
    still without suppressing anyone."""
    attempts = row.attempts + 1
    current_app.logger.warning("mail to outbox row %s not sent, will retry: %s", row.id, error)
    if attempts >= MAX_ATTEMPTS:
        if release(
            run.session, run.claim, row.id, status=OutboxStatus.FAILED.value, error=error,
            attempts=_t.c.attempts + 1,
        ):  # fmt: skip
            run.counts["failed"] += 1
        return
    if release(
        run.session,
        run.claim,
        row.id,
        status=OutboxStatus.QUEUED.value,
        error=error,
        attempts=_t.c.attempts + 1,
        next_attempt_at=_backoff(attempts),
    ):
        run.counts["retry"] += 1


def _backoff(attempts: int) -> datetime:
    return utcnow() + timedelta(minutes=2**attempts)


def _fail(run: _Run, row: Any, error: str, *, suppress: bool) -> None:
    session = run.session
    current_app.logger.warning("mail to outbox row %s failed: %s", row.id, error)
    done = release(
        session, run.claim, row.id, status=OutboxStatus.FAILED.value, error=error,
        attempts=_t.c.attempts + 1,
    )  # fmt: skip
    if not done:
        return
    run.counts["failed"] += 1
    if suppress:
        # A permanent refusal of this address: capabilities that keep lists suppress it,
        # in the app's own session (which may not be the delivery session).
        session.commit()
        failed = db.session.get(OutboxMessage, row.id, populate_existing=True)
        permanent_failure.send(current_app._get_current_object(), row=failed)
        db.session.commit()


def _flag_possible_repeat(session: Session, row_id: int) -> None:
    session.connection().execute(
        sa.update(_t).where(_t.c.id == row_id).values(possible_repeat=True)
    )
