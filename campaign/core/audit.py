"""The audit log: security-relevant events, kept for platform admins.

Rows hold ids and event names, never passwords or tokens, and survive the deletion of
the user or group they mention (no foreign keys), so history is not rewritten.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import has_request_context, request
from sqlalchemy.orm import Mapped, mapped_column

from campaign.core.models import TimestampedModel
from campaign.extensions import db


class AuditEvent(TimestampedModel):
    __tablename__ = "audit_events"

    event: Mapped[str] = mapped_column(sa.String(64), index=True)
    actor_id: Mapped[int | None] = mapped_column(index=True)
    group_id: Mapped[int | None] = mapped_column(index=True)
    subject_user_id: Mapped[int | None]
    details: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    ip_address: Mapped[str | None] = mapped_column(sa.String(64))


def record(
    event: str,
    *,
    actor_id: int | None = None,
    group_id: int | None = None,
    subject_user_id: int | None = None,
    keep_ip: bool = True,
    **details: Any,
) -> AuditEvent:
    """Add an audit row to the current transaction.

    The client's IP address is kept for what users of the platform do. Pass
    ``keep_ip=False`` when the person acting is a supporter using an emailed link (their
    data download, their erasure): the log then says it happened, and nothing of theirs.
    """
    row = AuditEvent(
        event=event,
        actor_id=actor_id,
        group_id=group_id,
        subject_user_id=subject_user_id,
        details=details,
        ip_address=request.remote_addr if keep_ip and has_request_context() else None,
    )
    db.session.add(row)
    return row
