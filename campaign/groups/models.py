"""Local groups, who belongs to them, and invitations to join."""

from __future__ import annotations

import enum
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from campaign.accounts.models import User
from campaign.core.models import TimestampedModel, UTCDateTime


class Role(enum.IntEnum):
    """Roles rank: a higher role can do everything a lower one can."""

    MEMBER = 10
    VOLUNTEER = 20
    CASEWORKER = 30
    ORGANISER = 40

    @property
    def label(self) -> str:
        return self.name.capitalize()


class GroupStatus(enum.StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"


class Group(TimestampedModel):
    """A local campaign group. Public once a platform admin approves it."""

    __tablename__ = "groups"

    slug: Mapped[str] = mapped_column(sa.String(60), unique=True)
    name: Mapped[str] = mapped_column(sa.String(120))
    area: Mapped[str] = mapped_column(sa.String(120), index=True)
    description: Mapped[str] = mapped_column(sa.Text, default="")
    contact_email: Mapped[str] = mapped_column(sa.String(320))
    status: Mapped[str] = mapped_column(sa.String(20), default=GroupStatus.PENDING, index=True)
    applied_by_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL")
    )
    decided_by_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL")
    )
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    decision_note: Mapped[str | None] = mapped_column(sa.String(1000))
    require_caseworker_2fa: Mapped[bool] = mapped_column(default=True)

    memberships: Mapped[list[Membership]] = relationship(
        back_populates="group", cascade="all, delete-orphan"
    )

    @property
    def is_approved(self) -> bool:
        return self.status == GroupStatus.APPROVED


class Membership(TimestampedModel):
    __tablename__ = "memberships"
    __table_args__ = (sa.UniqueConstraint("group_id", "user_id"),)

    group_id: Mapped[int] = mapped_column(sa.ForeignKey("groups.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    role: Mapped[int] = mapped_column(default=Role.MEMBER)

    group: Mapped[Group] = relationship(back_populates="memberships")
    user: Mapped[User] = relationship()

    @property
    def role_enum(self) -> Role:
        return Role(self.role)


class Invitation(TimestampedModel):
    """An emailed invitation to join a group; we store only a digest of its token."""

    __tablename__ = "invitations"

    group_id: Mapped[int] = mapped_column(
        sa.ForeignKey("groups.id", ondelete="CASCADE"), index=True
    )
    email: Mapped[str] = mapped_column(sa.String(320))
    role: Mapped[int] = mapped_column(default=Role.MEMBER)
    token_digest: Mapped[str] = mapped_column(sa.String(64), unique=True)
    invited_by_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL")
    )
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    group: Mapped[Group] = relationship()

    @property
    def role_enum(self) -> Role:
        return Role(self.role)
