"""An action a group runs, and the people signed up for it."""

from __future__ import annotations

import enum
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from campaign.core.crypto import SealedText
from campaign.core.models import TimestampedModel, UTCDateTime
from campaign.groups.models import Group

# Walk-ins who give no address are stored under this reserved (RFC 2606) domain.
WALK_IN_DOMAIN = "@walk-in.invalid"
# What an erased sign-up's address becomes; never mailed either.
ERASED_DOMAIN = "@erased.invalid"


class ActionKind(enum.StrEnum):
    PROTEST = "protest"
    PUBLIC_MEETING = "public_meeting"
    STALL = "stall"
    TRAINING = "training"
    BOARD_MEETING = "board_meeting"  # going to an NHS Trust or ICB board meeting
    CONSULTATION = "consultation"  # a public consultation, with anonymised stories
    OTHER = "other"


class ActionStatus(enum.StrEnum):
    DRAFT = "draft"
    PUBLISHED = "published"
    CANCELLED = "cancelled"


class SignupStatus(enum.StrEnum):
    CONFIRMED = "confirmed"  # has a place
    WAITLISTED = "waitlisted"  # waiting for a place, in sign-up order
    CANCELLED = "cancelled"


class Action(TimestampedModel):
    __tablename__ = "actions"

    group_id: Mapped[int] = mapped_column(
        sa.ForeignKey("groups.id", ondelete="CASCADE"), index=True
    )
    title: Mapped[str] = mapped_column(sa.String(160))
    kind: Mapped[str] = mapped_column(sa.String(30), default=ActionKind.OTHER)
    description: Mapped[str] = mapped_column(sa.Text, default="")
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime())
    is_online: Mapped[bool] = mapped_column(default=False)
    place_name: Mapped[str] = mapped_column(sa.String(160), default="")
    address: Mapped[str] = mapped_column(sa.String(500), default="")
    online_url: Mapped[str] = mapped_column(sa.String(500), default="")
    # The town or area, for finding actions near you; always public.
    area: Mapped[str] = mapped_column(sa.String(120), default="", index=True)
    # False: the exact place or link is shown only to people with a confirmed place.
    place_public: Mapped[bool] = mapped_column(default=True)
    accessibility: Mapped[str] = mapped_column(sa.Text, default="")
    capacity: Mapped[int | None]  # None: no limit
    status: Mapped[str] = mapped_column(sa.String(20), default=ActionStatus.DRAFT, index=True)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    reminder_hours: Mapped[int] = mapped_column(default=24)
    # The organiser's choice: group volunteers may run door check-in for this action.
    volunteers_check_in: Mapped[bool] = mapped_column(default=False, server_default=sa.false())

    group: Mapped[Group] = relationship()


class ActionSignup(TimestampedModel):
    """One person's sign-up for one action; no account needed. One row per address."""

    __tablename__ = "action_signups"
    __personal_data__ = True
    __table_args__ = (
        sa.UniqueConstraint("action_id", "email"),
        sa.Index("ix_action_signups_queue", "action_id", "status", "id"),
    )

    action_id: Mapped[int] = mapped_column(sa.ForeignKey("actions.id", ondelete="CASCADE"))
    # Repeated from the action so every group-scoped query can filter on it directly.
    group_id: Mapped[int] = mapped_column(sa.ForeignKey("groups.id", ondelete="CASCADE"))
    supporter_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("supporters.id", ondelete="SET NULL"), index=True
    )
    email: Mapped[str] = mapped_column(sa.String(320))
    name: Mapped[str] = mapped_column(sa.String(120), default="")
    # Health and contact details: AES-GCM sealed at rest (core.crypto); read and written
    # as plaintext through ``phone`` and ``access_needs``.
    phone_sealed: Mapped[str] = mapped_column("phone", sa.Text, default="")
    access_needs_sealed: Mapped[str] = mapped_column("access_needs", sa.Text, default="")
    phone = SealedText("phone_sealed", column="phone")
    access_needs = SealedText("access_needs_sealed", column="access_needs")
    status: Mapped[str] = mapped_column(sa.String(20), default=SignupStatus.CONFIRMED)
    # Bumped on every change, so an emailed cancel/change link works for one state only.
    version: Mapped[int] = mapped_column(default=0)
    walk_in: Mapped[bool] = mapped_column(default=False)
    checked_in_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    reminded_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    action: Mapped[Action] = relationship()

    @property
    def has_email(self) -> bool:
        """False for a walk-in recorded without an address or an erased sign-up
        (placeholders, never mailed)."""
        return not self.email.endswith((WALK_IN_DOMAIN, ERASED_DOMAIN))
