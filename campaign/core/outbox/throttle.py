"""A relay that asks us to slow down: the pause and the rate."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.orm import Mapped, Session, mapped_column

from campaign.core.models import Base, UTCDateTime, utcnow
from campaign.core.outbox.models import OutboxMessage, OutboxStatus


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
