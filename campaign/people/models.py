"""A group's supporters and the record of what each of them agreed to.

One row per email address per group: the address is normalised (lower case) and a
second sign-up updates the row. Consent is data: every grant, confirmation and
withdrawal is an append-only ``ConsentRecord`` with the wording that was shown.
"""

from __future__ import annotations

import enum
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from campaign.core.crypto import SealedText
from campaign.core.models import Base, TimestampedModel, UTCDateTime, utcnow
from campaign.groups.models import Group


class UpdatesStatus(enum.StrEnum):
    """Whether a supporter gets the group's campaign email (PECR: opt-in only)."""

    NONE = "none"  # never asked for it
    PENDING = "pending"  # asked, has not clicked the confirmation link yet
    SUBSCRIBED = "subscribed"  # confirmed (double opt-in) or recorded in person
    UNSUBSCRIBED = "unsubscribed"  # withdrew; never mailed marketing again


class ConsentAction(enum.StrEnum):
    GRANTED = "granted"
    CONFIRMED = "confirmed"
    WITHDRAWN = "withdrawn"


class ConsentMethod(enum.StrEnum):
    FORM = "form"
    EMAIL_LINK = "email_link"
    IMPORT = "import"
    IN_PERSON = "in_person"
    UNSUBSCRIBE_PAGE = "unsubscribe_page"
    ONE_CLICK = "one_click"
    ORGANISER = "organiser"
    ERASURE = "erasure"
    COMPLAINT = "complaint"  # they marked the group's mail as spam (an ARF report)


supporter_tags = sa.Table(
    "supporter_tags",
    Base.metadata,
    sa.Column("supporter_id", sa.ForeignKey("supporters.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("tag_id", sa.ForeignKey("tags.id", ondelete="CASCADE"), primary_key=True),
)


class Tag(TimestampedModel):
    __tablename__ = "tags"
    __table_args__ = (sa.UniqueConstraint("group_id", "name"),)

    group_id: Mapped[int] = mapped_column(sa.ForeignKey("groups.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(sa.String(60))


class Supporter(TimestampedModel):
    """A person who supports a group. Minimal by design: no more than the group needs."""

    __tablename__ = "supporters"
    __personal_data__ = True
    __table_args__ = (sa.UniqueConstraint("group_id", "email"),)

    group_id: Mapped[int] = mapped_column(
        sa.ForeignKey("groups.id", ondelete="CASCADE"), index=True
    )
    email: Mapped[str] = mapped_column(sa.String(320))
    first_name: Mapped[str] = mapped_column(sa.String(80), default="")
    last_name: Mapped[str] = mapped_column(sa.String(80), default="")
    # Sealed at rest (core.crypto); read and written as plaintext through ``phone``.
    phone_sealed: Mapped[str] = mapped_column("phone", sa.Text, default="")
    phone = SealedText("phone_sealed", column="phone")
    postcode: Mapped[str] = mapped_column(sa.String(10), default="")
    # Where the row came from first: "subscribe-form", "import:<file>", "organiser"...
    source: Mapped[str] = mapped_column(sa.String(120), default="")
    updates_status: Mapped[str] = mapped_column(
        sa.String(20), default=UpdatesStatus.NONE, index=True
    )
    updates_confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Bumped on every change of consent, so emailed links for the old state stop working.
    consent_version: Mapped[int] = mapped_column(default=0)

    group: Mapped[Group] = relationship()
    tags: Mapped[list[Tag]] = relationship(secondary=supporter_tags, order_by=Tag.name)
    consents: Mapped[list[ConsentRecord]] = relationship(
        back_populates="supporter", order_by="ConsentRecord.id", cascade="all, delete-orphan"
    )

    @property
    def full_name(self) -> str:
        return " ".join(part for part in (self.first_name, self.last_name) if part)


# The organisers' search matches the start of a name, an address or a postcode, ignoring
# case: each is a range scan on one of these expression indexes (LIKE 'word%' with
# text_pattern_ops on PostgreSQL, whatever the database's collation; a range on SQLite),
# which also hold erased_at so that matching ids come from the index alone.
# The last one counts the list by status without reading the rows.
_PATTERN = {"postgresql_ops": {"search_key": "text_pattern_ops"}}
SUPPORTER_SEARCH_KEYS = {
    "first_name": sa.func.lower(Supporter.first_name),
    "last_name": sa.func.lower(Supporter.last_name),
    "email": sa.func.lower(Supporter.email),
    # Literals, not bound parameters: the query must spell the indexed expression exactly.
    "postcode": sa.func.lower(
        sa.func.replace(Supporter.postcode, sa.literal_column("' '"), sa.literal_column("''"))
    ),
}
for _name, _key in SUPPORTER_SEARCH_KEYS.items():
    sa.Index(f"ix_supporters_search_{_name}", Supporter.group_id, _key.label("search_key"),
             Supporter.erased_at, **_PATTERN)  # fmt: skip
sa.Index(
    "ix_supporters_group_counts", Supporter.group_id, Supporter.erased_at, Supporter.updates_status
)


class ConsentRecord(TimestampedModel):
    """One event in a supporter's consent history. Never updated, never deleted alone."""

    __tablename__ = "consent_records"
    __personal_data__ = True
    # "Unsubscribed since this mailing": the group's withdrawals after a time.
    __table_args__ = (sa.Index("ix_consent_group_action_time", "group_id", "action", "created_at"),)

    supporter_id: Mapped[int] = mapped_column(
        sa.ForeignKey("supporters.id", ondelete="CASCADE"), index=True
    )
    group_id: Mapped[int] = mapped_column(sa.ForeignKey("groups.id", ondelete="CASCADE"))
    purpose: Mapped[str] = mapped_column(sa.String(40), default="group_updates")
    action: Mapped[str] = mapped_column(sa.String(20))
    method: Mapped[str] = mapped_column(sa.String(30))
    # The exact words the person saw when they agreed (or how they withdrew).
    wording: Mapped[str] = mapped_column(sa.Text, default="")
    # Who recorded it when it was not the person themself (import, in person).
    recorded_by_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL")
    )
    detail: Mapped[str] = mapped_column(sa.String(200), default="")

    supporter: Mapped[Supporter] = relationship(back_populates="consents")


class SuppressionReason(enum.StrEnum):
    UNSUBSCRIBED = "unsubscribed"
    HARD_BOUNCE = "hard_bounce"
    COMPLAINT = "complaint"
    MANUAL = "manual"


class Suppression(TimestampedModel):
    """An address this group must never mail again (marketing or otherwise from lists)."""

    __tablename__ = "suppressions"
    __table_args__ = (sa.UniqueConstraint("group_id", "email"),)

    group_id: Mapped[int] = mapped_column(sa.ForeignKey("groups.id", ondelete="CASCADE"))
    email: Mapped[str] = mapped_column(sa.String(320))
    reason: Mapped[str] = mapped_column(sa.String(20))
    detail: Mapped[str] = mapped_column(sa.String(300), default="")


class ErasedAddress(Base):
    """An address whose owner asked this group to erase them, kept only as a keyed hash.

    Imports and organisers' additions skip it, so an old spreadsheet cannot bring the
    person back; the person may sign up again themself through a public form (new
    consent), which removes the row. The hash is ``core.erasure.address_hash``.
    """

    __tablename__ = "erased_addresses"
    __table_args__ = (sa.UniqueConstraint("group_id", "address_hash"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    group_id: Mapped[int] = mapped_column(sa.ForeignKey("groups.id", ondelete="CASCADE"))
    address_hash: Mapped[str] = mapped_column(sa.String(64))
    erased_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
