"""Celery tasks that every capability shares, and the Celery app bound to Flask."""

from __future__ import annotations

from typing import Any

from celery import Celery, Task, shared_task
from celery.signals import worker_ready
from flask import Flask


def celery_init_app(app: Flask) -> Celery:
    """A Celery app whose tasks run inside the Flask app context.

    Without ``CELERY_BROKER_URL`` tasks run eagerly, in-process: the embedded default
    needs no Redis.
    """

    class FlaskTask(Task):
        def __call__(self, *args: object, **kwargs: object) -> object:
            with app.app_context():
                return self.run(*args, **kwargs)

    broker = app.config.get("CELERY_BROKER_URL")
    celery_app = Celery(app.name, task_cls=FlaskTask)
    celery_app.conf.update(
        broker_url=broker or "memory://",
        result_backend=app.config.get("CELERY_RESULT_BACKEND"),
        task_always_eager=not broker,
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True,
        # A request that dispatches after its commit must not wait long for a broker
        # that is down (the beat job delivers the mail later).
        broker_connection_timeout=2,
        beat_schedule={
            "deliver-outbox": {
                "task": "campaign.deliver_outbox",
                "schedule": float(app.config["BEAT_DELIVERY_SECONDS"]),
            },
            "send-due-mailings": {
                "task": "campaign.send_due_mailings",
                "schedule": float(app.config["BEAT_DELIVERY_SECONDS"]),
            },
            "send-action-reminders": {
                "task": "campaign.send_action_reminders",
                "schedule": float(app.config["BEAT_REMINDER_SECONDS"]),
            },
            "resume-stalled-jobs": {"task": "campaign.resume_stalled_jobs", "schedule": 60.0},
        },
    )
    celery_app.set_default()
    app.extensions["celery"] = celery_app
    return celery_app


@shared_task(name="campaign.deliver_outbox", acks_late=True, bind=True)
def deliver_outbox(self: Task) -> dict[str, int]:
    """Deliver due outbox rows. Idempotent: row state stops a second send.

    When rows are held by a claimant that has gone quiet (a worker killed mid-send),
    it runs again as soon as they become free, instead of waiting for the next beat.
    """
    from flask import current_app

    from campaign.core.outbox import deliver_due, stalled_claims
    from campaign.extensions import db

    counts = deliver_due()
    if not self.app.conf.task_always_eager and stalled_claims(db.session):
        heartbeat = current_app.config["MAIL_HEARTBEAT_SECONDS"]
        self.apply_async(countdown=3 * heartbeat + 1)
    return counts


@worker_ready.connect
def _deliver_when_a_worker_starts(sender: Any = None, **_kwargs: Any) -> None:
    """A worker that starts (perhaps replacing one that was killed) delivers at once:
    mail waiting since the crash does not wait for the next beat tick."""
    app = getattr(sender, "app", None)
    if app is not None:
        app.send_task("campaign.deliver_outbox")
