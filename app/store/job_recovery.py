"""Jobs the workers' periodic duties (workers/periodic.py) put back in motion: running jobs whose worker
stopped renewing its lease, and queued interactive jobs whose broker message may never have been sent.
The job state machine itself (create, claim, renew, finish, cancel) lives in app/store/jobs.py."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update

from app.store import batch_counters
from app.store.batch_counters import CounterDelta
from app.store.db import Database
from app.store.tables import Job, JobStatus, utcnow


@dataclass(frozen=True)
class RequeuedJob:
    id: str
    batch_id: str | None


class JobRecovery:
    def __init__(self, db: Database) -> None:
        self.db = db

    def requeue_expired(self, *, limit: int = 500) -> list[str]:
        """Return running jobs whose worker stopped renewing its lease to the queue."""
        return [job.id for job in self.requeue_expired_jobs(limit=limit)]

    def requeue_expired_jobs(self, *, limit: int = 500) -> list[RequeuedJob]:
        """The same, saying which are batch items (marked dispatched: the caller sends them at once)."""
        now = utcnow()
        with self.db.transaction() as session:
            expired = session.scalars(select(Job.id).where(_lease_expired(now)).limit(limit)).all()
            requeued = []
            for job_id in expired:
                moved = session.execute(
                    update(Job)
                    .where(Job.id == job_id, _lease_expired(now))
                    .values(status=JobStatus.queued, lease_token=None, lease_expires_at=None)
                    .returning(Job.batch_id)
                    .execution_options(synchronize_session=False)
                ).first()
                if moved is None:
                    continue
                requeued.append(RequeuedJob(job_id, moved.batch_id))
                if moved.batch_id is not None:
                    session.execute(
                        update(Job)
                        .where(Job.id == job_id)
                        .values(dispatched_at=now)
                        .execution_options(synchronize_session=False)
                    )
                    stripe = batch_counters.stripe_of(job_id)
                    batch_counters.add(session, moved.batch_id, stripe, CounterDelta(running=-1))
            return requeued

    def resend_stranded(self, *, queued_before: datetime, limit: int = 500) -> list[str]:
        """Queued interactive jobs, waiting since before `queued_before` (and not re-sent since), marked
        as re-sent now: the caller sends their messages again. An API that died between writing a job
        and enqueueing it leaves such a job; a duplicate message for one merely waiting is harmless (the
        claim takes a job once)."""
        now = utcnow()
        waiting = (
            (Job.status == JobStatus.queued)
            & Job.batch_id.is_(None)
            & (Job.created_at < queued_before)  # implied by the next line; lets the partial index range-scan
            & (func.coalesce(Job.dispatched_at, Job.created_at) < queued_before)
        )
        with self.db.transaction() as session:
            ids = session.scalars(select(Job.id).where(waiting).order_by(Job.created_at).limit(limit)).all()
            if not ids:
                return []
            return list(
                session.scalars(
                    update(Job)
                    .where(Job.id.in_(ids), waiting)
                    .values(dispatched_at=now)
                    .returning(Job.id)
                    .execution_options(synchronize_session=False)
                ).all()
            )


def _lease_expired(now: datetime) -> Any:
    return (Job.status == JobStatus.running) & (Job.lease_expires_at < now)
