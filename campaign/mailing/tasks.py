"""Background work for campaign email: scheduled mailings and their finished state."""

from __future__ import annotations

from datetime import datetime

from celery import shared_task

from campaign.core.outbox import dispatch_if_committed
from campaign.extensions import db
from campaign.mailing import services


def run_due_mailings(now: datetime | None = None) -> dict[str, int]:
    """Queue every mailing whose scheduled time has come, then mark finished ones SENT.

    Owns its transactions (it is called by the beat task and the CLI, never a view).
    Running it twice, or in two workers at once, queues each mailing once.
    """
    with services.mail_link_context():
        queued = services.queue_due_mailings(now)
        db.session.commit()
        dispatch_if_committed()
        finished = services.refresh_sending_mailings()
        db.session.commit()
    return {"queued": len(queued), "recipients": sum(m.recipient_count for m in queued),
            "finished": finished}  # fmt: skip


@shared_task(name="campaign.send_due_mailings", acks_late=True)
def send_due_mailings() -> dict[str, int]:
    """Celery beat runs this every minute. Idempotent: a claimed mailing is not re-queued."""
    return run_due_mailings()
