"""The outbox row, its categories and statuses, and the permanent-failure signal."""

from __future__ import annotations

import enum
from datetime import datetime

import sqlalchemy as sa
from blinker import Namespace
from sqlalchemy.orm import Mapped, mapped_column

from campaign.core.models import TimestampedModel, UTCDateTime, utcnow


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

# Delivery lanes: each has its own throttle state, so one group's campaign tripping the
# relay never holds back password resets, confirmations or reminders.
SERVICE_LANE = "service"


def lane_for(category: str, group_id: int | None) -> str:
    """The lane a row travels in: all mail people asked for (or strangers triggered)
    shares the service lane; each group's campaign mail has a lane of its own."""
    if category != MailCategory.MARKETING:
        return SERVICE_LANE
    return f"group:{group_id}" if group_id is not None else "marketing"


# Sent with ``row=`` when a relay refuses a message for good (5xx): the people capability
# listens and suppresses the address for the group that sent it.
permanent_failure = Namespace().signal("outbox.permanent-failure")


class OutboxMessage(TimestampedModel):
    """One email to one recipient, from queued to sent (or failed)."""

    __tablename__ = "outbox_messages"
    # Serves the claim query's "WHERE status = ... ORDER BY priority, id LIMIT n" straight
    # from the index, so a batch costs the same at the end of a 50,000 send as at the start.
    __personal_data__ = True
    # ix_outbox_mailing_status serves a mailing's report: counts by status and the rows
    # not delivered, without reading the 100,000 that were; ix_outbox_supporter_mailing
    # its "unsubscribed since" (was this person sent this mailing?) from the index alone.
    __table_args__ = (
        sa.Index("ix_outbox_queue", "status", "priority", "id"),
        sa.Index("ix_outbox_mailing_status", "mailing_id", "group_id", "status", "id"),
        sa.Index("ix_outbox_supporter_mailing", "supporter_id", "mailing_id", "group_id"),
        # The report's "may have had two copies": a handful of rows among 100,000.
        sa.Index(
            "ix_outbox_possible_repeat",
            "mailing_id",
            postgresql_where=sa.text("possible_repeat"),
            sqlite_where=sa.text("possible_repeat = 1"),
        ),
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
    # Who may send it: the lane (throttled on its own), and while it is SENDING, the
    # claim that owns it (a random token per claimed batch), the worker holding that
    # claim and when that worker last showed it was alive.
    lane: Mapped[str] = mapped_column(
        sa.String(60), default=SERVICE_LANE, server_default=SERVICE_LANE
    )
    claim_token: Mapped[str | None] = mapped_column(sa.String(32), index=True)
    claimed_by: Mapped[str | None] = mapped_column(sa.String(100))
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Set when the row was taken over from a claimant that stopped mid-send while this
    # row was the one in flight: the person may have had two copies (same Message-ID).
    possible_repeat: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
