"""Background work for campaign email: scheduled mailings and their finished state, and
the background job that queues a confirmed send-now."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from celery import shared_task
from flask_babel import lazy_gettext as _l

from campaign.core import jobs
from campaign.core.outbox import dispatch_if_committed
from campaign.extensions import db
from campaign.groups.models import Group
from campaign.mailing import services
from campaign.mailing.models import Mailing, MailingStatus

SEND_JOB = "mailing.send"


def run_due_mailings(now: datetime | None = None) -> dict[str, int]:
    """Queue every mailing whose scheduled time has come, then mark finished ones SENT.

    Owns its transactions (it is called by the beat task and the CLI, never a view).
    Running it twice, or in two workers at once, queues each mailing once.
    """
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


@jobs.handles(SEND_JOB)
def run_send_job(job: jobs.BackgroundJob, progress: jobs.Progress) -> dict[str, Any]:
    """Queue a confirmed send-now, 2,000 recipients a transaction; delivery starts after
    the first chunk. Resumes after the last committed chunk if its worker died."""
    mailing = db.session.get(Mailing, job.params["mailing_id"])
    group = db.session.get(Group, job.group_id)
    if mailing is None or group is None or mailing.group_id != group.id:
        raise jobs.JobFailed(str(_l("That mailing no longer exists.")))
    if mailing.status != MailingStatus.QUEUEING:  # a run before this one finished it
        return {"mailing_id": mailing.id, "queued": mailing.recipient_count}
    checkpoint = progress.checkpoint or {}
    after = checkpoint.get("after", 0)
    while True:
        count, after = services.queue_next_recipients(group, mailing, after)
        if count == 0:
            break
        total = max(job.total, mailing.recipient_count)
        progress.update(done=mailing.recipient_count, total=total, checkpoint={"after": after})
        dispatch_if_committed()
    services.finish_queueing(mailing)
    job.done = job.total = mailing.recipient_count
    db.session.commit()
    dispatch_if_committed()
    return {"mailing_id": mailing.id, "queued": mailing.recipient_count}
