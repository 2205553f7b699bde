"""What is in progress right now, as the database says: read at each metrics scrape (app/metrics/)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from app.store.db import Database
from app.store.tables import Job, JobStatus
from app.store.tables_batches import Batch, BatchStatus

# Both are index reads: jobs by (status, lease_expires_at), and the few batches there are.
_RUNNING_JOBS = select(func.count()).select_from(Job).where(Job.status == JobStatus.running)
_ACTIVE_BATCHES = (
    select(func.count()).select_from(Batch).where(Batch.status.in_((BatchStatus.running, BatchStatus.cancelling)))
)


@dataclass(frozen=True)
class Activity:
    jobs_running: int
    batches_running: int  # running or cancelling (items still ending)


class ActivityReader:
    def __init__(self, db: Database) -> None:
        self.db = db

    def read(self) -> Activity:
        with self.db.connection() as connection:
            jobs = connection.execute(_RUNNING_JOBS).scalar_one()
            batches = connection.execute(_ACTIVE_BATCHES).scalar_one()
        return Activity(int(jobs), int(batches))
