"""The people capability's part in erasure and the data download.

Supporters, their consent history, their tags and the group's do-not-mail rows for
the address. Imported people are supporter rows (``source`` "import:<file>") with an
import consent record, so an import leaves nothing else behind in the database; the
uploaded file itself is deleted after the import (or within a day if never imported).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy import select

from campaign.core import erasure
from campaign.core.erasure import ErasureSubject, address_hash
from campaign.core.models import utcnow
from campaign.extensions import db
from campaign.people.models import (
    ConsentRecord,
    ErasedAddress,
    Supporter,
    Suppression,
    Tag,
    UpdatesStatus,
    supporter_tags,
)


def placeholder_address(supporter_id: int) -> str:
    """What an erased supporter's address becomes (``.invalid`` is never delivered)."""
    return f"erased-{supporter_id}@erased.invalid"


def is_erased_address(group_id: int, email: str) -> bool:
    """Whether the owner of this address asked this group to erase them."""
    return (
        db.session.scalar(
            select(ErasedAddress.id).where(
                ErasedAddress.group_id == group_id,
                ErasedAddress.address_hash == address_hash(email),
            )
        )
        is not None
    )


def erased_among(group_id: int, emails: list[str]) -> set[str]:
    """Which of these (normalised) addresses were erased from this group, in one query."""
    if not emails:
        return set()
    by_hash = {address_hash(email): email for email in emails}
    found = db.session.scalars(
        select(ErasedAddress.address_hash).where(
            ErasedAddress.group_id == group_id, ErasedAddress.address_hash.in_(list(by_hash))
        )
    )
    return {by_hash[digest] for digest in found}


def forget_erasure(group_id: int, email: str) -> None:
    """The person signed up again themself (new consent): the address is usable again."""
    db.session.execute(
        sa.delete(ErasedAddress).where(
            ErasedAddress.group_id == group_id, ErasedAddress.address_hash == address_hash(email)
        )
    )


def _erase_people(subject: ErasureSubject) -> None:
    """The supporter row stays (counts stay honest) without identity; consent records
    keep what happened and when, not the wording or detail; tags are unlinked. The
    address leaves the suppression list and is kept only as a keyed hash."""
    db.session.execute(
        sa.delete(Suppression).where(
            Suppression.group_id == subject.group_id, Suppression.email == subject.email
        )
    )
    if not is_erased_address(subject.group_id, subject.email):
        db.session.add(
            ErasedAddress(group_id=subject.group_id, address_hash=address_hash(subject.email))
        )
    db.session.execute(
        sa.update(ConsentRecord)
        .where(ConsentRecord.supporter_id == subject.supporter_id)
        .values(wording="", detail="")
        .execution_options(synchronize_session=False)
    )
    db.session.execute(
        sa.delete(supporter_tags).where(supporter_tags.c.supporter_id == subject.supporter_id)
    )
    db.session.execute(
        sa.update(Supporter)
        .where(Supporter.id == subject.supporter_id, Supporter.group_id == subject.group_id)
        .values(
            email=placeholder_address(subject.supporter_id),
            first_name="", last_name="", phone_sealed="", postcode="", source="",
            updates_status=UpdatesStatus.UNSUBSCRIBED,
            erased_at=sa.func.coalesce(Supporter.erased_at, utcnow()),
        )
        .execution_options(synchronize_session=False)
    )  # fmt: skip
    db.session.flush()


def _export_people(subject: ErasureSubject) -> dict[str, Any]:
    supporter = db.session.get(Supporter, subject.supporter_id)
    if supporter is None or supporter.group_id != subject.group_id:
        return {}
    tags = db.session.scalars(
        select(Tag.name)
        .join(supporter_tags, supporter_tags.c.tag_id == Tag.id)
        .where(supporter_tags.c.supporter_id == supporter.id)
        .order_by(Tag.name)
    )
    consents = db.session.scalars(
        select(ConsentRecord)
        .where(ConsentRecord.supporter_id == supporter.id)
        .order_by(ConsentRecord.id)
    )
    return {
        "email": supporter.email,
        "first_name": supporter.first_name,
        "last_name": supporter.last_name,
        "phone": supporter.phone,
        "postcode": supporter.postcode,
        "source": supporter.source,
        "updates_status": supporter.updates_status,
        "added": supporter.created_at.isoformat(),
        "tags": list(tags),
        "consent_history": [
            {
                "when": record.created_at.isoformat(),
                "action": record.action,
                "method": record.method,
                "wording": record.wording,
            }
            for record in consents
        ],
    }


erasure.register(
    "people",
    models=[Supporter, ConsentRecord, Tag, Suppression],
    erase=_erase_people,
    export=_export_people,
    order=90,
)
