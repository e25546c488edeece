"""The outbox's part in erasure and the data download: the mail a group sent a person."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy import select

from campaign.core import erasure
from campaign.core.erasure import ErasureSubject
from campaign.core.outbox.models import OutboxMessage, OutboxStatus
from campaign.extensions import db


def _outbox_rows_of(subject: ErasureSubject) -> sa.ColumnElement[bool]:
    """A group's mail to the person: campaign mail by supporter id, the rest by address."""
    return sa.and_(
        OutboxMessage.group_id == subject.group_id,
        sa.or_(
            OutboxMessage.supporter_id == subject.supporter_id,
            OutboxMessage.to_addr == subject.email,
        ),
    )


def _erase_outbox(subject: ErasureSubject) -> None:
    """Mail waiting for them is dropped; every row loses address, content, headers
    (they carry the unsubscribe link), the relay's error text and the calendar file.
    Status, times and category stay, so the group's delivery figures stay true."""
    db.session.execute(
        sa.update(OutboxMessage)
        .where(_outbox_rows_of(subject))
        .values(
            to_addr=f"erased-{subject.supporter_id}@erased.invalid",
            subject="",
            text_body="",
            html_body=None,
            headers={},
            last_error=None,
            calendar=None,
            status=sa.case(
                (OutboxMessage.status == OutboxStatus.QUEUED, OutboxStatus.SKIPPED),
                else_=OutboxMessage.status,
            ),
        )
        .execution_options(synchronize_session=False)
    )  # fmt: skip


def _export_outbox(subject: ErasureSubject) -> dict[str, Any]:
    rows = db.session.execute(
        select(
            OutboxMessage.created_at, OutboxMessage.subject, OutboxMessage.category,
            OutboxMessage.status, OutboxMessage.sent_at,
        )
        .where(_outbox_rows_of(subject))
        .order_by(OutboxMessage.id)
    )  # fmt: skip
    return {
        "emails": [
            {
                "queued": row.created_at.isoformat(),
                "subject": row.subject,
                "kind": row.category,
                "status": row.status,
                "sent": row.sent_at.isoformat() if row.sent_at else None,
            }
            for row in rows
        ]
    }


erasure.register(
    "outbox", models=[OutboxMessage], erase=_erase_outbox, export=_export_outbox, order=10
)
