"""What is in progress right now, as the database says: read at each metrics scrape (app/metrics/)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import bindparam, func, select

from app.store.db import Database
from app.store.tables import Job, JobStatus, utcnow
from app.store.tables_batches import Batch, BatchStatus

# Index reads: jobs by (status, lease_expires_at), the few batches there are, and the partial index of
# batch items with a message out (`dispatched_at` set: a window's worth).
_RUNNING_JOBS = select(func.count()).select_from(Job).where(Job.status == JobStatus.running)
_ACTIVE_BATCHES = (
    select(func.count()).select_from(Batch).where(Batch.status.in_((BatchStatus.running, BatchStatus.cancelling)))
)
# A deferred batch item's `dispatched_at` is when its delayed message becomes due (workers/deferral.py):
# in the future while a worker holds that message. (Only batch items are ever deferred: interactive calls
# wait for rate-limit room as long as it takes.)
_DEFERRED_ITEMS = (
    select(func.count())
    .select_from(Job)
    .where(Job.dispatched_at > bindparam("p_now"), Job.batch_id.is_not(None), Job.status == JobStatus.queued)
)


@dataclass(frozen=True)
class Activity:
    jobs_running: int
    batches_running: int  # running or cancelling (items still ending)
    jobs_deferred: int = 0  # batch items waiting out a rate-limit deferral's countdown


class ActivityReader:
    def __init__(self, db: Database) -> None:
        self.db = db

    def read(self) -> Activity:
        with self.db.connection() as connection:
            jobs = connection.execute(_RUNNING_JOBS).scalar_one()
            batches = connection.execute(_ACTIVE_BATCHES).scalar_one()
            deferred = connection.execute(_DEFERRED_ITEMS, {"p_now": utcnow()}).scalar_one()
        return Activity(int(jobs), int(batches), int(deferred))
