"""Throttle state per delivery lane: a relay that asks us to slow down, or refuses us.

Each lane (the service lane, and each group's campaign mail) has its own row, so a
group's send that trips the relay pauses that send only; password resets and
confirmations keep going. The row also keeps what the relay last said when it refused
or throttled the lane, in its own words, for the organiser and the platform admin.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta

import sqlalchemy as sa
from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import Mapped, Session, mapped_column

from campaign.core.models import Base, UTCDateTime, utcnow
from campaign.core.outbox.models import lane_for


class PauseKind:
    THROTTLED = "throttled"  # 421, 4xx to MAIL or DATA, a run of 4xx to RCPT
    REFUSED = "refused"  # 5xx to AUTH, MAIL FROM or DATA: about us or the message
    UNREACHABLE = "unreachable"  # no connection to the relay at all


class MailThrottle(Base):
    """Delivery's memory of one lane: paused until when, at what rate, and why."""

    __tablename__ = "mail_throttle"

    id: Mapped[int] = mapped_column(primary_key=True)
    lane: Mapped[str] = mapped_column(sa.String(60), unique=True)
    paused_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # None: as configured (MAIL_RATE_PER_SECOND, 0 = no cap); else the slower rate.
    rate_per_second: Mapped[float | None] = mapped_column(sa.Float)
    throttles: Mapped[int] = mapped_column(default=0)
    # What the relay said, as it said it, while the lane is in trouble (cleared when
    # the lane delivers again).
    last_error: Mapped[str | None] = mapped_column(sa.String(500))
    last_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    error_kind: Mapped[str | None] = mapped_column(sa.String(20))


def lane_state(session: Session, lane: str) -> MailThrottle:
    """The lane's row, read afresh (never a stale copy), created on first use."""
    state = session.scalars(
        select(MailThrottle)
        .where(MailThrottle.lane == lane)
        .execution_options(populate_existing=True)
    ).first()
    if state is not None:
        return state
    try:
        with session.begin_nested():
            state = MailThrottle(lane=lane, throttles=0)
            session.add(state)
    except sa.exc.IntegrityError:  # another worker made it first
        state = session.scalars(select(MailThrottle).where(MailThrottle.lane == lane)).one()
    return state


def paused_lanes_query(now: datetime) -> sa.Select:
    return select(MailThrottle.lane).where(MailThrottle.paused_until > now)


def slowest_rate(session: Session) -> float:
    """The slowest rate any lane is held to (0: no cap), for sizing a batch to its lease."""
    configured = current_app.config["MAIL_RATE_PER_SECOND"] or 0.0
    slower = session.scalar(select(sa.func.min(MailThrottle.rate_per_second)))
    rates = [rate for rate in (configured, slower) if rate]
    return min(rates) if rates else 0.0


class Pacer:
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


def pause_lane(state: MailThrottle, kind: str, reason: str, pacer: Pacer | None) -> datetime:
    """Hold the lane back: longer each time in a row it happens; after throttling, resume
    at half the rate reached. Returns when the lane may send again."""
    base = current_app.config["MAIL_THROTTLE_PAUSE_SECONDS"]
    state.throttles += 1
    pause = timedelta(seconds=base * 2 ** min(state.throttles - 1, 4))
    now = utcnow()
    state.paused_until = now + pause
    state.last_error = reason[:500]
    state.last_error_at = now
    state.error_kind = kind
    if kind == PauseKind.THROTTLED:
        current = state.rate_per_second or current_app.config["MAIL_RATE_PER_SECOND"] or 0
        observed = pacer.observed_rate() if pacer and pacer.sent else current or 1.0
        state.rate_per_second = max(0.2, min(observed, current or observed) / 2)
        current_app.logger.warning(
            "relay throttled lane %s (%s): paused %s, then %.1f messages/s",
            state.lane, reason, pause, state.rate_per_second,
        )  # fmt: skip
    else:
        # Not about any recipient: about our account, our sender or the message. A
        # person has to look, so it is logged as an error.
        current_app.logger.error(
            "relay %s lane %s: %s; paused %s, nobody suppressed", kind, state.lane, reason, pause
        )
    return state.paused_until


def recover_lane(state: MailThrottle) -> None:
    """The lane delivered again: forget the trouble and speed back up towards the
    configured rate."""
    state.throttles = 0
    state.last_error = None
    state.last_error_at = None
    state.error_kind = None
    if state.rate_per_second is None:
        return
    configured = current_app.config["MAIL_RATE_PER_SECOND"]
    state.rate_per_second *= 1.25
    if (configured and state.rate_per_second >= configured) or state.rate_per_second > 1000:
        state.rate_per_second = None


def delivery_problem(group_id: int | None = None) -> MailThrottle | None:
    """The lane state of a group's campaign mail (or, with no group, the service lane)
    when the relay refused or throttled it and it has not delivered since: the
    organiser's page shows ``last_error``, the relay's own words."""
    from campaign.core.outbox.models import MailCategory
    from campaign.extensions import db

    category = MailCategory.MARKETING if group_id is not None else MailCategory.TRANSACTIONAL
    return db.session.scalars(
        select(MailThrottle).where(
            MailThrottle.lane == lane_for(category, group_id),
            MailThrottle.last_error.is_not(None),
        )
    ).first()


def delivery_problems() -> list[MailThrottle]:
    """Every lane the relay is refusing or throttling now, for the platform admin."""
    from campaign.extensions import db

    return list(
        db.session.scalars(
            select(MailThrottle)
            .where(MailThrottle.last_error.is_not(None))
            .order_by(MailThrottle.last_error_at.desc())
        )
    )
