"""Celery tasks for actions: reminders (beat runs it every few minutes)."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="campaign.send_action_reminders", acks_late=True)
def send_action_reminders() -> int:
    """Queue due reminders and deliver them after the commit. Each sign-up once."""
    from campaign.actions.services import send_due_reminders
    from campaign.core.outbox import dispatch_if_committed
    from campaign.extensions import db

    count = send_due_reminders()
    db.session.commit()
    dispatch_if_committed()
    return count
