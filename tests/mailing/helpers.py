"""Test data for campaign email: supporters in every consent state, tags, drafts."""

from __future__ import annotations

import re
from collections.abc import Iterable

from sqlalchemy import insert, select

from campaign.core.models import utcnow
from campaign.core.outbox import OutboxMessage
from campaign.extensions import db
from campaign.groups.models import Group
from campaign.mailing.models import Mailing, MailingStatus
from campaign.people.models import Supporter, Suppression, SuppressionReason, Tag, UpdatesStatus
from tests.conftest import csrf_token, post


def add_supporter(
    group: Group,
    email: str,
    *,
    status: UpdatesStatus = UpdatesStatus.SUBSCRIBED,
    first_name: str = "",
    tags: Iterable[Tag] = (),
    erased: bool = False,
    suppressed: SuppressionReason | None = None,
) -> Supporter:
    supporter = Supporter(
        group_id=group.id,
        email=email.lower(),
        first_name=first_name,
        updates_status=status,
        updates_confirmed_at=utcnow() if status == UpdatesStatus.SUBSCRIBED else None,
        erased_at=utcnow() if erased else None,
    )
    supporter.tags = list(tags)
    db.session.add(supporter)
    if suppressed is not None:
        db.session.add(Suppression(group_id=group.id, email=email.lower(), reason=suppressed))
    db.session.flush()
    return supporter


def add_many_subscribers(group: Group, count: int, prefix: str = "fan") -> None:
    """Bulk insert ``count`` confirmed subscribers (prefix0@example.org, ...)."""
    now = utcnow()
    db.session.execute(
        insert(Supporter),
        [
            {"group_id": group.id, "email": f"{prefix}{i}@example.org", "first_name": f"Fan{i}",
             "updates_status": UpdatesStatus.SUBSCRIBED, "updates_confirmed_at": now}
            for i in range(count)
        ],
    )  # fmt: skip


def add_tag(group: Group, name: str) -> Tag:
    tag = Tag(group_id=group.id, name=name)
    db.session.add(tag)
    db.session.flush()
    return tag


def add_draft(
    group: Group,
    *,
    subject: str = "Rally on Saturday",
    body: str = "Hello {{first_name}}!",
    segment: dict | None = None,
) -> Mailing:
    mailing = Mailing(
        group_id=group.id,
        subject=subject,
        body_markdown=body,
        segment=segment or {"kind": "subscribers"},
        status=MailingStatus.DRAFT,
    )
    db.session.add(mailing)
    db.session.flush()
    return mailing


def rows_of(mailing: Mailing) -> list[OutboxMessage]:
    return list(
        db.session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.mailing_id == mailing.id)
            .order_by(OutboxMessage.id)
        )
    )


def send_now_through_pages(client, group: Group, mailing: Mailing):
    """Send now as an organiser does: the send form, then the confirmation's one button.

    Returns the confirmation's answer (a redirect to the send's progress page).
    """
    response = post(client, f"/g/{group.slug}/mailings/{mailing.id}/send", {"when": "now"})
    assert response.status_code == 302, response.get_data(as_text=True)[:300]
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    expected = re.search(r'name="expected" type="hidden" value="(\d+)"', page).group(1)
    return client.post(
        response.headers["Location"],
        data={"csrf_token": csrf_token(client), "expected": expected},
    )
