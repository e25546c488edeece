"""The delivery loop."""

from __future__ import annotations

import smtplib
from datetime import timedelta

from flask import current_app

from campaign.core.models import utcnow
from campaign.core.outbox.claim import _claim_batch, _mark_sent
from campaign.core.outbox.mime import message_bytes
from campaign.core.outbox.models import MAX_ATTEMPTS, OutboxMessage, OutboxStatus, permanent_failure
from campaign.core.outbox.throttle import _Pacer, _pause, _recover, _throttle_state, _Throttled
from campaign.core.outbox.transport import _is_throttling, _is_transient, _transport
from campaign.extensions import db


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
