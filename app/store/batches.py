"""Batches: intake (a row, then items in bulk), reads with their counters, cancel, end, and item pages
(the records it takes and gives are in app/store/batch_records.py).

Items are `jobs` rows written in chunks with COPY on Postgres (Core executemany elsewhere), never ORM objects.
Every read of progress sums the batch's counter stripes (app/store/batch_counters.py); no read counts
item rows, except the pages of results, which walk the `(batch_id, batch_seq)` index.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update

from app.store import batch_counters
from app.store.batch_counters import BatchTotals, CounterDelta
from app.store.batch_records import BatchRecord, BatchTemplate, EndRows, ItemOutcome, NewBatch, NewItem
from app.store.db import Database
from app.store.tables import Job, JobStatus, new_id, new_ids, utcnow
from app.store.tables_batches import Batch, BatchCounter, BatchStatus


class BatchRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    # --- intake ------------------------------------------------------------------------------------

    def create(self, new: NewBatch) -> str:
        """A batch in `validating`, invisible to the dispatcher until `activate`."""
        batch_id = new_id()
        now = utcnow()
        with self.db.transaction() as session:
            session.add(
                Batch(
                    id=batch_id,
                    project_id=new.project_id,
                    status=BatchStatus.validating,
                    function_id=new.function_id,
                    revision_id=new.revision_id,
                    task_template=new.task_template,
                    webhook_url=new.webhook_url,
                    meta=new.meta,
                    completion_window=new.completion_window,
                    execution=new.execution,
                    webhook_secrets=list(new.webhook_secrets) or None,
                    trace_context=new.trace_context,
                    total=0,
                    invalid_count=0,
                    created_at=now,
                    updated_at=now,
                )
            )
            session.flush()
            session.execute(insert(BatchCounter), batch_counters.new_stripes(batch_id))
        return batch_id

    def add_items(self, batch: str, new: NewBatch, items: Sequence[NewItem], *, first_seq: int) -> str | None:
        """Insert a chunk of items (COPY on Postgres, one executemany on SQLite); the job id of the first.

        The batch's first item (`first_seq` 1) becomes its anchor (its Idempotency-Key binding)."""
        if not items:
            return None
        now = utcnow()
        name = new.task_template["name"]
        ids = new_ids(3 * len(items))  # a job id, a span id and a trace id per item
        rows = [
            {
                "id": ids[3 * offset],
                "project_id": new.project_id,
                "function_id": new.function_id,
                "revision_id": new.revision_id,
                "span_id": ids[3 * offset + 1],
                "status": JobStatus.queued,
                "task": {"name": name, "input": item.input, "tags": item.tags},
                "trace_id": ids[3 * offset + 2],
                "delivery_attempts": 0,
                "created_at": now,
                "stream": False,
                "webhook_secrets": None,
                "batch_id": batch,
                "batch_seq": first_seq + offset,
                "custom_id": item.custom_id,
            }
            for offset, item in enumerate(items)
        ]
        with self.db.transaction() as session:
            connection = session.connection()
            if connection.dialect.name == "postgresql":
                _copy_items(connection, rows)
            else:
                connection.execute(insert(Job.__table__), rows)  # Core executemany, no ORM objects
            values: dict[str, Any] = {"updated_at": now}
            if first_seq == 1:
                values["anchor_job_id"] = rows[0]["id"]
            session.execute(update(Batch).where(Batch.id == batch).values(**values))
        return rows[0]["id"]

    def activate(self, batch_id: str, *, total: int, invalid: Sequence[dict[str, Any]], invalid_count: int) -> None:
        """Intake done: the batch runs."""
        with self.db.transaction() as session:
            session.execute(
                update(Batch)
                .where(Batch.id == batch_id, Batch.status == BatchStatus.validating)
                .values(
                    status=BatchStatus.running,
                    total=total,
                    invalid_items=list(invalid) or None,
                    invalid_count=invalid_count,
                    updated_at=utcnow(),
                )
            )

    def discard(self, batch_id: str) -> None:
        """Remove a batch whose intake was refused, with the items already written."""
        with self.db.transaction() as session:
            session.execute(delete(Job).where(Job.batch_id == batch_id))
            session.execute(delete(Batch).where(Batch.id == batch_id))

    def fail_abandoned_intakes(self, *, idle_since: datetime) -> int:
        """Batches whose intake stopped writing (the API died mid-upload) fail, and lose their items."""
        with self.db.transaction() as session:
            stale = session.scalars(
                select(Batch.id).where(Batch.status == BatchStatus.validating, Batch.updated_at < idle_since)
            ).all()
            for batch_id in stale:
                session.execute(delete(Job).where(Job.batch_id == batch_id, Job.status == JobStatus.queued))
                session.execute(
                    update(Batch)
                    .where(Batch.id == batch_id, Batch.status == BatchStatus.validating)
                    .values(status=BatchStatus.failed, finished_at=utcnow(), total=0)
                )
            return len(stale)

    # --- reads -------------------------------------------------------------------------------------

    def get(self, batch_id: str, *, project_id: str | None = None) -> BatchRecord | None:
        with self.db.transaction() as session:
            query = select(Batch).where(Batch.id == batch_id)
            if project_id is not None:
                query = query.where(Batch.project_id == project_id)
            row = session.scalars(query).first()
            if row is None:
                return None
            return BatchRecord.of(row, batch_counters.totals(session, [row.id]).get(row.id))

    def find(
        self, project_id: str, statuses: Sequence[BatchStatus], *, offset: int, limit: int
    ) -> tuple[list[BatchRecord], int]:
        """A page of the project's batches, newest first, and how many match."""
        conditions = [Batch.project_id == project_id]
        if statuses:
            conditions.append(Batch.status.in_(statuses))
        with self.db.transaction() as session:
            total = session.scalar(select(func.count()).select_from(Batch).where(*conditions)) or 0
            rows = session.scalars(
                select(Batch).where(*conditions).order_by(Batch.created_at.desc(), Batch.id).offset(offset).limit(limit)
            ).all()
            sums = batch_counters.totals(session, [row.id for row in rows])
            return [BatchRecord.of(row, sums.get(row.id)) for row in rows], total

    def template(self, batch_id: str) -> BatchTemplate | None:
        """What every item of the batch shares: its task template, and the trace context its items' spans link to."""
        with self.db.transaction() as session:
            row = session.execute(select(Batch.task_template, Batch.trace_context).where(Batch.id == batch_id)).first()
            return BatchTemplate(row.task_template, row.trace_context) if row is not None else None

    def items(
        self, batch_id: str, *, statuses: Sequence[JobStatus] = (), after_seq: int = 0, limit: int = 1000
    ) -> list[ItemOutcome]:
        """Items after position `after_seq`, in submission order (keyset paging: each page is one index walk)."""
        conditions = [Job.batch_id == batch_id, Job.batch_seq > after_seq]
        if statuses:
            conditions.append(Job.status.in_(statuses))
        with self.db.transaction() as session:
            rows = session.execute(
                select(Job.batch_seq, Job.id, Job.custom_id, Job.status, Job.result, Job.error, Job.task)
                .where(*conditions)
                .order_by(Job.batch_seq)
                .limit(limit)
            )
            return [
                ItemOutcome(r.batch_seq, r.id, r.custom_id, JobStatus(r.status), r.result, r.error, r.task)
                for r in rows
            ]

    # --- cancel and end ----------------------------------------------------------------------------

    def request_cancel(self, batch_id: str, *, error: dict[str, Any]) -> int:
        """Running → cancelling, and every queued item cancelled in one UPDATE (nothing not run is billed).
        Returns how many items were cancelled; again on a cancelling batch, it catches items put back
        on the queue since (a lost worker's, or one the rate limit sent back)."""
        now = utcnow()
        with self.db.transaction() as session:
            session.execute(
                update(Batch)
                .where(Batch.id == batch_id, Batch.status == BatchStatus.running)
                .values(status=BatchStatus.cancelling, cancel_requested_at=now)
            )
            status = session.scalar(select(Batch.status).where(Batch.id == batch_id))
            if status != BatchStatus.cancelling:
                return 0
            cancelled = session.execute(
                update(Job)
                .where(Job.batch_id == batch_id, Job.status == JobStatus.queued)
                .values(status=JobStatus.cancelled, error=error, finished_at=now, dispatched_at=None)
                .execution_options(synchronize_session=False)
            ).rowcount
            if cancelled:
                batch_counters.add(session, batch_id, 0, CounterDelta(cancelled=cancelled))
            return cancelled

    def cancel_running(self, batch_id: str, *, error: dict[str, Any]) -> list[str]:
        """A cancelling batch's running items cancelled too: those waiting for rate-limit room and those
        whose provider call is in flight. Their ids, for the caller to announce: each worker then
        abandons its call (as for a cancelled job), and a lost announcement fails its next lease
        renewal. Nothing is billed for them; a result that comes back anyway is not written."""
        now = utcnow()
        cancelling = select(Batch.id).where(Batch.id == batch_id, Batch.status == BatchStatus.cancelling).exists()
        with self.db.transaction() as session:
            ids = session.scalars(
                update(Job)
                .where(Job.batch_id == batch_id, Job.status == JobStatus.running, cancelling)
                .values(
                    status=JobStatus.cancelled,
                    error=error,
                    finished_at=now,
                    lease_token=None,
                    lease_expires_at=None,
                    dispatched_at=None,
                )
                .returning(Job.id)
                .execution_options(synchronize_session=False)
            ).all()
            if ids:
                batch_counters.add(session, batch_id, 0, CounterDelta(running=-len(ids), cancelled=len(ids)))
            return list(ids)

    def end_if_done(self, batch_id: str, rows_for: EndRows) -> BatchRecord | None:
        """Move a batch whose items all ended to its final state, with `rows_for(ended)`; the ended
        batch, or None when it has not ended (or another caller ended it first).

        Counters are read after the caller's own transitions committed, so of several items ending
        together, the last to commit sees them all."""
        now = utcnow()
        with self.db.transaction() as session:
            row = session.get(Batch, batch_id)
            if row is None:
                return None
            totals = batch_counters.totals(session, [batch_id]).get(batch_id, BatchTotals())
            status = BatchStatus(row.status)
            if status is BatchStatus.running and totals.ended >= row.total:
                final = BatchStatus.completed
            elif status is BatchStatus.cancelling and totals.running == 0 and totals.ended >= row.total:
                final = BatchStatus.cancelled
            else:
                return None
            moved = session.execute(
                update(Batch)
                .where(Batch.id == batch_id, Batch.status == status)
                .values(status=final, finished_at=now, updated_at=now)
                .execution_options(synchronize_session=False)
            ).rowcount
            if not moved:
                return None
            session.expire(row)
            ended = BatchRecord.of(session.get(Batch, batch_id), totals)
            session.add_all(rows_for(ended))
            return ended


_ITEM_COLUMNS = (
    "id",
    "project_id",
    "function_id",
    "revision_id",
    "span_id",
    "status",
    "task",
    "trace_id",
    "delivery_attempts",
    "created_at",
    "stream",
    "webhook_secrets",
    "batch_id",
    "batch_seq",
    "custom_id",
)
_COPY_ITEMS = f"COPY {Job.__tablename__} ({', '.join(_ITEM_COLUMNS)}) FROM STDIN"


def _copy_items(connection: Connection, rows: list[dict[str, Any]]) -> None:
    """Batch items into `jobs` with COPY, in the session's transaction: SQLAlchemy's executemany spent
    more CPU building and binding each row's parameters than Postgres spent storing it (37 % of the
    API's CPU accepting a 100,000-item batch). Values go as COPY's text, which Postgres parses as each
    column's type; the task as JSON text and the status by name, as SQLAlchemy stores them."""
    driver = connection.connection.driver_connection
    task, status = _ITEM_COLUMNS.index("task"), _ITEM_COLUMNS.index("status")
    with driver.cursor() as cursor, cursor.copy(_COPY_ITEMS) as copy:
        for row in rows:
            values = [row[column] for column in _ITEM_COLUMNS]
            values[task], values[status] = json.dumps(values[task]), values[status].name
            copy.write_row(values)
