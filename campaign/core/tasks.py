"""Celery tasks that every capability shares, and the Celery app bound to Flask."""

from __future__ import annotations

from celery import Celery, Task, shared_task
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
        beat_schedule={
            "deliver-outbox": {"task": "campaign.deliver_outbox", "schedule": 60.0},
            "send-due-mailings": {"task": "campaign.send_due_mailings", "schedule": 60.0},
            "send-action-reminders": {"task": "campaign.send_action_reminders", "schedule": 300.0},
            "resume-stalled-jobs": {"task": "campaign.resume_stalled_jobs", "schedule": 60.0},
        },
    )
    celery_app.set_default()
    app.extensions["celery"] = celery_app
    return celery_app


@shared_task(name="campaign.deliver_outbox", acks_late=True)
def deliver_outbox() -> dict[str, int]:
    """Deliver due outbox rows. Idempotent: row state stops a second send."""
    from campaign.core.outbox import deliver_due

    return deliver_due()
