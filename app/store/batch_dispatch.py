"""What the batch dispatcher asks of the database: which batches are live, how many of a batch's items
are out (on the broker or running), and marking the next ones as sent.

`jobs.dispatched_at` is set while a broker message for a queued item is presumed out; claiming or ending
the item clears it, so the partial index on it holds only the few items in flight to a worker.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Select, func, select, update

from app.store import batch_counters
from app.store.db import Database
from app.store.tables import Job, JobStatus, utcnow
from app.store.tables_batches import Batch, BatchStatus


@dataclass(frozen=True)
class LiveBatch:
    id: str
    status: BatchStatus
    execution: str = "queue"  # "provider": its items go through provider batches, not the queue


class BatchDispatchRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def live(self, *, limit: int = 1000) -> list[LiveBatch]:
        """Batches with items to run or to wait for (running, cancelling), oldest first."""
        with self.db.transaction() as session:
            rows = session.execute(
                select(Batch.id, Batch.status, Batch.execution)
                .where(Batch.status.in_([BatchStatus.running, BatchStatus.cancelling]))
                .order_by(Batch.created_at)
                .limit(limit)
            )
            return [LiveBatch(row.id, BatchStatus(row.status), row.execution or "queue") for row in rows]

    def outstanding(self, batch_id: str) -> int:
        """Items sent to the broker and not yet claimed, plus items running."""
        with self.db.transaction() as session:
            sent = session.scalar(select(func.count()).where(Job.batch_id == batch_id, Job.dispatched_at.is_not(None)))
            totals = batch_counters.totals(session, [batch_id]).get(batch_id)
            return (sent or 0) + (totals.running if totals else 0)

    def take_next(self, batch_id: str, count: int) -> list[str]:
        """Mark up to `count` undispatched queued items of a running batch as sent (in submission order);
        their ids, for the caller to send. Concurrent dispatchers skip each other's rows."""
        if count <= 0:
            return []
        running = select(Batch.id).where(Batch.id == batch_id, Batch.status == BatchStatus.running).exists()
        candidates = (
            select(Job.id)
            .where(Job.batch_id == batch_id, Job.status == JobStatus.queued, Job.dispatched_at.is_(None), running)
            .order_by(Job.batch_seq)
            .limit(count)
            .with_for_update(skip_locked=True)
        )
        return self._mark(candidates, Job.dispatched_at.is_(None))

    def take_lost(self, batch_id: str, *, sent_before: datetime, limit: int = 1000) -> list[str]:
        """Items sent before `sent_before` and still queued (their message was lost: a Redis restart),
        marked as sent again; their ids."""
        candidates = (
            select(Job.id)
            .where(Job.batch_id == batch_id, Job.dispatched_at < sent_before, Job.status == JobStatus.queued)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return self._mark(candidates, Job.dispatched_at < sent_before)

    def unsend(self, job_ids: list[str]) -> None:
        """The broker refused these messages: leave the items for the next dispatch."""
        if not job_ids:
            return
        with self.db.transaction() as session:
            session.execute(
                update(Job)
                .where(Job.id.in_(job_ids), Job.status == JobStatus.queued)
                .values(dispatched_at=None)
                .execution_options(synchronize_session=False)
            )

    def _mark(self, candidates: Select, still: ColumnElement[bool]) -> list[str]:
        # Pick (and lock) first, then update the picked rows: a LIMIT subquery inside the UPDATE may be
        # re-run by Postgres for every outer row, and would then mark far more than its LIMIT.
        with self.db.transaction() as session:
            picked = session.scalars(candidates).all()
            if not picked:
                return []
            rows = session.execute(
                update(Job)
                .where(Job.id.in_(picked), still, Job.status == JobStatus.queued)
                .values(dispatched_at=utcnow())
                .returning(Job.id, Job.batch_seq)
                .execution_options(synchronize_session=False)
            ).all()
            return [row.id for row in sorted(rows, key=lambda row: row.batch_seq)]
