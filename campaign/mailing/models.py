"""A message an organiser composes and sends to one of the group's segments."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from campaign.core.models import TimestampedModel, UTCDateTime


class MailingStatus(enum.StrEnum):
    DRAFT = "draft"
    SCHEDULED = "scheduled"
    QUEUEING = "queueing"  # send-now confirmed: a background job is adding the recipients
    SENDING = "sending"  # recipients queued in the outbox, some not delivered yet
    SENT = "sent"  # every recipient row reached a final state
    CANCELLED = "cancelled"


class Mailing(TimestampedModel):
    """One campaign email. Its recipients are rows in the outbox (``mailing_id``)."""

    __tablename__ = "mailings"

    group_id: Mapped[int] = mapped_column(
        sa.ForeignKey("groups.id", ondelete="CASCADE"), index=True
    )
    author_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    subject: Mapped[str] = mapped_column(sa.String(200))
    body_markdown: Mapped[str] = mapped_column(sa.Text)
    # Who it goes to, e.g. {"kind": "subscribers"} or {"kind": "tag", "tag_id": 3}.
    segment: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    status: Mapped[str] = mapped_column(sa.String(20), default=MailingStatus.DRAFT, index=True)
    scheduled_for: Mapped[datetime | None] = mapped_column(UTCDateTime())
    queued_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    recipient_count: Mapped[int] = mapped_column(default=0)


class BounceKind(enum.StrEnum):
    PERMANENT = "permanent"  # the mailbox does not exist or refuses us for good (5.x.x)
    TEMPORARY = "temporary"  # delayed, full, try later (4.x.x); only repeats suppress
    COMPLAINT = "complaint"  # the person marked our mail as spam (an ARF report)


class BounceEvent(TimestampedModel):
    """One delivery problem reported about a message a group sent, with the server's reason.

    Kept so organisers can see why someone stopped getting mail, and so repeated
    temporary failures can be counted (docs/bounces.md has the policy). Only reports
    that match a message we sent are recorded.
    """

    __tablename__ = "bounce_events"
    __table_args__ = (sa.Index("ix_bounce_events_group_address", "group_id", "address"),)

    group_id: Mapped[int] = mapped_column(sa.ForeignKey("groups.id", ondelete="CASCADE"))
    supporter_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("supporters.id", ondelete="CASCADE"), index=True
    )
    address: Mapped[str] = mapped_column(sa.String(320))
    kind: Mapped[str] = mapped_column(sa.String(20))
    # The server's own words, shortened: the diagnostic code or the status.
    reason: Mapped[str] = mapped_column(sa.String(300), default="")
    # The Message-ID of our message that bounced.
    message_id: Mapped[str] = mapped_column(sa.String(255), default="")
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
