"""Background jobs: long work (an import, a big send) as a Celery task with progress.

DESIGN rule 16: anything that can take more than a couple of seconds is a job, not a
request. A view creates a ``BackgroundJob`` row, commits, calls ``start(job)`` and
redirects to a progress page. The task runs the handler registered for the job's
kind; the handler commits its work in chunks through ``Progress.update()``, so other
groups' writes never wait behind it and the page shows how far it has got.

Without ``CELERY_BROKER_URL`` (the embedded default) the job runs in-process right
away, in an app context (hence a database session) of its own. With a broker it runs
in a worker. A job whose worker died (its heartbeat, renewed at every chunk, is older
than ``JOB_STALE_SECONDS``) is started again by the beat task ``resume_stalled_jobs``
(or when its task is redelivered), and handlers carry on from their last committed
checkpoint; a claim on the heartbeat stops two runs of one job at once.

``core`` imports no capability: capabilities register their handlers with
``@handles("people.import")`` when they are imported.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from celery import shared_task
from flask import current_app, has_request_context
from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from sqlalchemy.orm import Mapped, mapped_column

from campaign.core.models import TimestampedModel, UTCDateTime, utcnow
from campaign.extensions import db

# A running job that has not reported for this long is shown as stalled.
STALLED_AFTER = timedelta(minutes=5)


class JobStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class BackgroundJob(TimestampedModel):
    """One piece of long work for a group, with how far it has got."""

    __tablename__ = "background_jobs"

    group_id: Mapped[int] = mapped_column(
        sa.ForeignKey("groups.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(sa.String(40))
    status: Mapped[str] = mapped_column(sa.String(20), default=JobStatus.QUEUED)
    total: Mapped[int] = mapped_column(default=0)
    done: Mapped[int] = mapped_column(default=0)
    errors: Mapped[int] = mapped_column(default=0)
    # A short, safe-to-show reason when the job failed.
    error_summary: Mapped[str] = mapped_column(sa.String(300), default="")
    # What the job was asked to do, and what it produced (or its checkpoint while running).
    params: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    result: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    created_by_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL")
    )
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    @property
    def finished(self) -> bool:
        return self.status in (JobStatus.DONE, JobStatus.FAILED)

    @property
    def percent(self) -> int:
        if self.status == JobStatus.DONE:
            return 100
        if not self.total:
            return 0
        return min(99, self.done * 100 // self.total)

    @property
    def stalled(self) -> bool:
        """Running, but silent for a while: its worker may have stopped."""
        last = self.heartbeat_at or self.started_at or self.created_at
        return not self.finished and last is not None and utcnow() - last > STALLED_AFTER


class JobFailed(Exception):
    """A handler gives up; the message is shown to the organiser as it is."""


Handler = Callable[[BackgroundJob, "Progress"], dict[str, Any]]
_HANDLERS: dict[str, Handler] = {}


def handles(kind: str) -> Callable[[Handler], Handler]:
    """Register the function that does the work of jobs of ``kind``."""

    def register(handler: Handler) -> Handler:
        _HANDLERS[kind] = handler
        return handler

    return register


def create_job(
    group_id: int,
    kind: str,
    *,
    actor_id: int | None,
    params: dict[str, Any] | None = None,
    total: int = 0,
) -> BackgroundJob:
    """Add a queued job in the caller's transaction (flushes); ``start()`` it after commit."""
    if kind not in _HANDLERS:
        raise ValueError(f"no handler registered for job kind {kind!r}")
    job = BackgroundJob(
        group_id=group_id, kind=kind, status=JobStatus.QUEUED, total=total,
        params=params or {}, result={}, created_by_id=actor_id,
    )  # fmt: skip
    db.session.add(job)
    db.session.flush()
    return job


def get_job(group_id: int, job_id: int, kind: str | None = None) -> BackgroundJob | None:
    """The group's job, or None: a job id from another group finds nothing."""
    query = select(BackgroundJob).where(
        BackgroundJob.id == job_id, BackgroundJob.group_id == group_id
    )
    if kind is not None:
        query = query.where(BackgroundJob.kind == kind)
    return db.session.scalar(query)


class Progress:
    """Handed to a handler: each ``update()`` commits the work so far with the job's figures."""

    def __init__(self, job: BackgroundJob) -> None:
        self.job = job

    def update(
        self,
        *,
        done: int | None = None,
        total: int | None = None,
        errors: int | None = None,
        checkpoint: dict[str, Any] | None = None,
    ) -> None:
        job = self.job
        if done is not None:
            job.done = done
        if total is not None:
            job.total = total
        if errors is not None:
            job.errors = errors
        if checkpoint is not None:
            job.result = {"checkpoint": checkpoint}
        job.heartbeat_at = utcnow()
        db.session.commit()

    @property
    def checkpoint(self) -> dict[str, Any] | None:
        """Where an earlier run of this job stopped (its worker died), if it did."""
        return (self.job.result or {}).get("checkpoint")


def start(job: BackgroundJob) -> None:
    """Run the job (call after the commit that created it): in a worker, or right here."""
    if current_app.config.get("CELERY_BROKER_URL"):
        current_app.extensions["celery"].send_task("campaign.run_job", args=[job.id])
        return
    # Its own app context: its own session, so its commits are its own.
    with current_app.app_context():
        run(job.id)


@contextmanager
def _work_context() -> Iterator[None]:
    """Outside a request (a worker), links come from BASE_URL, and on SQLite each unit
    of work takes the write lock up front (a POST), as a request that writes does."""
    if has_request_context():
        yield
        return
    with current_app.test_request_context(
        "/", base_url=current_app.config["BASE_URL"], method="POST"
    ):
        yield


def run(job_id: int) -> str:
    """Run one job to its end; returns its final status. Owns its transactions.

    A finished job is left alone, so running it twice does nothing the second time.
    """
    with _work_context():
        session = db.session
        job = session.get(BackgroundJob, job_id)
        if job is None:
            return "missing"
        if job.finished:
            return job.status
        handler = _HANDLERS.get(job.kind)
        if handler is None:
            return _fail(job_id, str(_l("This kind of work is not known here.")))
        if not _claim(job_id):
            session.rollback()
            return JobStatus.RUNNING  # another run of it is alive (its heartbeat is recent)
        session.refresh(job)
        try:
            result = handler(job, Progress(job))
        except JobFailed as exc:
            session.rollback()
            return _fail(job_id, str(exc))
        except Exception:
            current_app.logger.exception("background job %s (%s) failed", job_id, job.kind)
            session.rollback()
            return _fail(
                job_id, str(_l("Something went wrong on our side. Please try again later."))
            )
        job.status = JobStatus.DONE
        job.result = result
        job.finished_at = job.heartbeat_at = utcnow()
        session.commit()
        return job.status


def _stale_before() -> datetime:
    return utcnow() - timedelta(seconds=current_app.config["JOB_STALE_SECONDS"])


def _claim(job_id: int) -> bool:
    """Mark the job running, unless another run of it is alive; commits.

    One conditional UPDATE: a queued job, or a running one whose heartbeat is older
    than ``JOB_STALE_SECONDS`` (its worker died), is taken; a live one is left alone, so
    a job never runs twice at once.
    """
    now = utcnow()
    taken = db.session.execute(
        sa.update(BackgroundJob)
        .where(
            BackgroundJob.id == job_id,
            sa.or_(
                BackgroundJob.status == JobStatus.QUEUED,
                sa.and_(
                    BackgroundJob.status == JobStatus.RUNNING,
                    sa.or_(
                        BackgroundJob.heartbeat_at.is_(None),
                        BackgroundJob.heartbeat_at < _stale_before(),
                    ),
                ),
            ),
        )
        .values(
            status=JobStatus.RUNNING,
            heartbeat_at=now,
            started_at=sa.func.coalesce(BackgroundJob.started_at, now),
        )
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.commit()
    return taken == 1


def resume_stalled() -> list[int]:
    """Start again the jobs whose worker died (and queued ones whose message was lost).

    Called every minute by beat; each job carries on from its last checkpoint.
    """
    stale = _stale_before()
    ids = list(
        db.session.scalars(
            select(BackgroundJob.id).where(
                sa.or_(
                    sa.and_(
                        BackgroundJob.status == JobStatus.RUNNING,
                        sa.or_(
                            BackgroundJob.heartbeat_at.is_(None),
                            BackgroundJob.heartbeat_at < stale,
                        ),
                    ),
                    sa.and_(
                        BackgroundJob.status == JobStatus.QUEUED, BackgroundJob.created_at < stale
                    ),
                )
            )
        )
    )
    db.session.rollback()
    for job_id in ids:
        job = db.session.get(BackgroundJob, job_id)
        if job is not None:
            start(job)
    return ids


def _fail(job_id: int, summary: str) -> str:
    session = db.session
    job = session.get(BackgroundJob, job_id)
    if job is None:
        return "missing"
    job.status = JobStatus.FAILED
    job.error_summary = summary[:300]
    job.finished_at = job.heartbeat_at = utcnow()
    session.commit()
    return job.status


@shared_task(name="campaign.run_job", acks_late=True)
def run_job(job_id: int) -> str:
    """The Celery task for every job. Idempotent: a finished job is not run again."""
    return run(job_id)


@shared_task(name="campaign.resume_stalled_jobs", acks_late=True)
def resume_stalled_jobs() -> list[int]:
    """Beat runs this every minute: jobs whose worker died start again."""
    return resume_stalled()
