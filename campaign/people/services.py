"""Supporter rules: one row per address per group, consent as data, double opt-in.

Services flush, never commit. Marketing mail may only go to ``marketing_recipients()``:
subscribed (confirmed), not erased, not suppressed by this group.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import url_for
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from campaign.accounts.models import User
from campaign.core import audit
from campaign.core.addresses import normalise_email
from campaign.core.models import utcnow
from campaign.core.outbox import MailCategory, queue_email
from campaign.core.tokens import TokenError, fingerprint, make_token, read_token
from campaign.extensions import db
from campaign.groups.models import Group
from campaign.people.models import (
    ConsentAction,
    ConsentMethod,
    ConsentRecord,
    Supporter,
    Suppression,
    SuppressionReason,
    Tag,
    UpdatesStatus,
)

# Links in campaign mail must keep working for a long time; unsubscribing is idempotent.
UNSUBSCRIBE_MAX_AGE = 5 * 365 * 24 * 3600
SUBSCRIBE_CONFIRM_MAX_AGE = 7 * 24 * 3600


class PeopleError(Exception):
    """A rule was broken; the message is safe to show."""


def updates_wording(group: Group) -> str:
    """The exact consent wording shown next to the (never pre-ticked) checkbox."""
    return str(
        _l(
            "Send me email updates from %(group)s about its campaigns and actions. "
            "I can unsubscribe at any time with the link in every email.",
            group=group.name,
        )
    )


def find_supporter(group: Group, email: str) -> Supporter | None:
    return db.session.scalar(
        select(Supporter).where(Supporter.group_id == group.id, Supporter.email == email)
    )


def get_supporter(group: Group, supporter_id: int) -> Supporter | None:
    """A supporter of this group only: ids from another group find nothing."""
    return db.session.scalar(
        select(Supporter).where(
            Supporter.id == supporter_id,
            Supporter.group_id == group.id,
            Supporter.erased_at.is_(None),
        )
    )


def upsert_supporter(
    group: Group,
    email: str,
    *,
    first_name: str = "",
    last_name: str = "",
    phone: str = "",
    postcode: str = "",
    source: str = "",
) -> tuple[Supporter, bool]:
    """Find or create the supporter for an address; new non-empty details win.

    Returns ``(supporter, created)``. A second sign-up updates the row, never
    duplicates it, and never blanks a detail the person gave before.
    """
    email = normalise_email(email)
    supporter = find_supporter(group, email)
    created = supporter is None
    if supporter is None:
        supporter = Supporter(group_id=group.id, email=email, source=source[:120])
        db.session.add(supporter)
    details = {"first_name": first_name, "last_name": last_name, "phone": phone}
    details["postcode"] = postcode.upper().strip()
    for name, value in details.items():
        if value:
            setattr(supporter, name, value.strip())
    db.session.flush()
    return supporter, created


def record_consent(
    supporter: Supporter,
    action: ConsentAction,
    method: ConsentMethod,
    *,
    wording: str = "",
    recorded_by: User | None = None,
    detail: str = "",
) -> ConsentRecord:
    record = ConsentRecord(
        supporter_id=supporter.id,
        group_id=supporter.group_id,
        action=action,
        method=method,
        wording=wording,
        recorded_by_id=recorded_by.id if recorded_by else None,
        detail=detail[:200],
    )
    db.session.add(record)
    supporter.consent_version += 1
    return record


def is_suppressed(group_id: int, email: str) -> bool:
    return (
        db.session.scalar(
            select(Suppression.id).where(
                Suppression.group_id == group_id, Suppression.email == email
            )
        )
        is not None
    )


def suppress(group_id: int, email: str, reason: SuppressionReason, detail: str = "") -> None:
    """Add an address to the group's never-mail list (idempotent)."""
    if not is_suppressed(group_id, email):
        db.session.add(
            Suppression(group_id=group_id, email=email, reason=reason, detail=detail[:300])
        )
        db.session.flush()


# --- double opt-in ------------------------------------------------------------------------


def _subscription_token(supporter: Supporter) -> str:
    return make_token(
        "subscribe",
        {"s": supporter.id, "f": fingerprint(supporter.email, supporter.consent_version)},
    )


def request_subscription(
    group: Group, email: str, *, first_name: str = "", source: str = "subscribe-form"
) -> Supporter:
    """A visitor asks for the group's updates: record the consent and send one link.

    Nothing marketing is sent before the link is clicked. The confirmation mail holds
    no text the visitor typed, and each address gets only a few such mails a day.
    """
    supporter, _ = upsert_supporter(group, email, first_name=first_name, source=source)
    if supporter.updates_status == UpdatesStatus.SUBSCRIBED:
        return supporter
    supporter.updates_status = UpdatesStatus.PENDING
    record_consent(
        supporter, ConsentAction.GRANTED, ConsentMethod.FORM, wording=updates_wording(group)
    )
    db.session.flush()
    queue_email(
        supporter.email,
        "subscribe_confirm",
        category=MailCategory.STRANGER,
        group_id=group.id,
        group=group,
        confirm_url=url_for(
            "people.confirm_subscription", token=_subscription_token(supporter), _external=True
        ),
    )
    return supporter


def check_subscription_token(token: str) -> Supporter:
    data = read_token("subscribe", token, SUBSCRIBE_CONFIRM_MAX_AGE)
    supporter = db.session.get(Supporter, data.get("s"))
    if supporter is None or supporter.erased_at is not None:
        raise TokenError("invalid")
    if data.get("f") != fingerprint(supporter.email, supporter.consent_version):
        raise TokenError("used")
    return supporter


def confirm_subscription(token: str) -> Supporter:
    """The person clicked the link and pressed the button: now they are subscribed."""
    supporter = check_subscription_token(token)
    supporter.updates_status = UpdatesStatus.SUBSCRIBED
    supporter.updates_confirmed_at = utcnow()
    record_consent(supporter, ConsentAction.CONFIRMED, ConsentMethod.EMAIL_LINK)
    # A fresh, confirmed opt-in lifts an earlier unsubscribe, never a bounce or complaint.
    db.session.execute(
        sa.delete(Suppression).where(
            Suppression.group_id == supporter.group_id,
            Suppression.email == supporter.email,
            Suppression.reason == SuppressionReason.UNSUBSCRIBED,
        )
    )
    return supporter


# --- unsubscribe ------------------------------------------------------------------------------


def unsubscribe_token(supporter: Supporter) -> str:
    return make_token("unsubscribe", {"s": supporter.id, "g": supporter.group_id})


def supporter_from_unsubscribe_token(token: str) -> Supporter:
    data = read_token("unsubscribe", token, UNSUBSCRIBE_MAX_AGE)
    supporter = db.session.get(Supporter, data.get("s"))
    if supporter is None or supporter.group_id != data.get("g"):
        raise TokenError("invalid")
    return supporter


def unsubscribe(supporter: Supporter, method: ConsentMethod, detail: str = "") -> Supporter:
    """Stop the group's updates for good (idempotent): status, history, suppression."""
    if supporter.updates_status != UpdatesStatus.UNSUBSCRIBED:
        supporter.updates_status = UpdatesStatus.UNSUBSCRIBED
        record_consent(supporter, ConsentAction.WITHDRAWN, method, detail=detail)
    suppress(supporter.group_id, supporter.email, SuppressionReason.UNSUBSCRIBED, detail)
    return supporter


# --- who may get marketing mail ----------------------------------------------------------------


def marketing_recipients(group: Group, segment: dict[str, Any] | None = None) -> sa.Select:
    """Supporters a campaign email may go to: confirmed, not erased, not suppressed.

    ``segment`` narrows it: ``{"kind": "subscribers"}`` (all of them) or
    ``{"kind": "tag", "tag_id": N}``.
    """
    suppressed = select(Suppression.email).where(Suppression.group_id == group.id)
    query = select(Supporter).where(
        Supporter.group_id == group.id,
        Supporter.updates_status == UpdatesStatus.SUBSCRIBED,
        Supporter.erased_at.is_(None),
        Supporter.email.not_in(suppressed),
    )
    segment = segment or {"kind": "subscribers"}
    if segment.get("kind") == "tag":
        tag = db.session.scalar(
            select(Tag).where(Tag.id == segment.get("tag_id"), Tag.group_id == group.id)
        )
        if tag is None:
            raise PeopleError(_l("That tag does not exist in this group."))
        query = query.where(Supporter.tags.contains(tag))
    elif segment.get("kind") != "subscribers":
        raise PeopleError(_l("Unknown list."))
    return query.order_by(Supporter.id)


def count_recipients(group: Group, segment: dict[str, Any] | None = None) -> int:
    query = marketing_recipients(group, segment).order_by(None)
    return db.session.scalar(select(sa.func.count()).select_from(query.subquery())) or 0


# --- privacy: export and erasure -------------------------------------------------------------


def export_supporter(supporter: Supporter) -> dict[str, Any]:
    """Everything this group holds about one supporter, for a subject access request."""
    return {
        "email": supporter.email,
        "first_name": supporter.first_name,
        "last_name": supporter.last_name,
        "phone": supporter.phone,
        "postcode": supporter.postcode,
        "source": supporter.source,
        "updates_status": supporter.updates_status,
        "added": supporter.created_at.isoformat(),
        "tags": [tag.name for tag in supporter.tags],
        "consent_history": [
            {
                "when": record.created_at.isoformat(),
                "action": record.action,
                "method": record.method,
                "wording": record.wording,
            }
            for record in supporter.consents
        ],
    }


def erase_supporter(actor: User, supporter: Supporter) -> None:
    """Remove the person's data but keep anonymous counts (the row, without identity).

    The address stays on the group's suppression list and nowhere else: honouring the
    request means never mailing it again, which needs the address itself.
    """
    suppress(supporter.group_id, supporter.email, SuppressionReason.MANUAL, "erased on request")
    supporter.email = f"erased-{supporter.id}@erased.invalid"
    supporter.first_name = supporter.last_name = supporter.phone = supporter.postcode = ""
    supporter.source = ""
    supporter.updates_status = UpdatesStatus.UNSUBSCRIBED
    supporter.erased_at = utcnow()
    supporter.tags = []
    for record in supporter.consents:
        record.wording = ""
        record.detail = ""
    record_consent(supporter, ConsentAction.WITHDRAWN, ConsentMethod.ERASURE)
    audit.record(
        "supporter.erased", actor_id=actor.id, group_id=supporter.group_id, supporter=supporter.id
    )
