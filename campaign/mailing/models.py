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
