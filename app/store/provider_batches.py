"""Provider batches in the database: the intent written before the provider is asked (a row and its
items, in one transaction), the provider's id once known, their states, and the items still to end.

Items stay `queued` while a provider batch holds them: cancelling the batch cancels them at once
(BatchRepository.request_cancel), and an item ends once, by the conditional UPDATE of
`JobRepository.end_queued`, however often its answer is read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select, update

from app.store import batch_counters
from app.store.batch_counters import CounterDelta
from app.store.db import Database
from app.store.job_records import JobRecord
from app.store.tables import Job, JobStatus, utcnow
from app.store.tables_batches import Batch, BatchStatus
from app.store.tables_provider_batches import ProviderBatch, ProviderBatchItem, ProviderBatchState


@dataclass(frozen=True)
class ProviderBatchRecord:
    id: str
    batch_id: str
    model: str
    state: ProviderBatchState
    external_id: str | None
    external_state: str | None
    item_count: int
    created_at: datetime
    batch_status: BatchStatus | None = None  # its Conveyor batch's status, where read with it

    @classmethod
    def of(cls, row: ProviderBatch, batch_status: str | None = None) -> ProviderBatchRecord:
        return cls(
            id=row.id,
            batch_id=row.batch_id,
            model=row.model,
            state=ProviderBatchState(row.state),
            external_id=row.external_id,
            external_state=row.external_state,
            item_count=row.item_count,
            created_at=row.created_at,
            batch_status=BatchStatus(batch_status) if batch_status else None,
        )


_OPEN = (ProviderBatchState.preparing, ProviderBatchState.submitted)


class ProviderBatchRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def batches_to_split(self, *, limit: int = 100) -> list[str]:
        """Running provider-execution batches with queued items no provider batch holds yet."""
        held = select(ProviderBatchItem.job_id).where(ProviderBatchItem.job_id == Job.id).exists()
        waiting = select(Job.id).where(Job.batch_id == Batch.id, Job.status == JobStatus.queued, ~held).exists()
        with self.db.transaction() as session:
            return list(
                session.scalars(
                    select(Batch.id)
                    .where(Batch.status == BatchStatus.running, Batch.execution == "provider", waiting)
                    .order_by(Batch.created_at)
                    .limit(limit)
                )
            )

    def unheld_items(self, batch_id: str, *, limit: int) -> list[JobRecord]:
        """Queued items of a batch that no provider batch holds, in submission order."""
        held = select(ProviderBatchItem.job_id).where(ProviderBatchItem.job_id == Job.id).exists()
        with self.db.transaction() as session:
            rows = session.scalars(
                select(Job)
                .where(Job.batch_id == batch_id, Job.status == JobStatus.queued, ~held)
                .order_by(Job.batch_seq)
                .limit(limit)
            )
            return [JobRecord.of(row) for row in rows]

    def record_intent(self, batch_id: str, model: str, job_ids: Sequence[str]) -> str:
        """A provider batch to be created for these items, written before anything is sent."""
        now = utcnow()
        with self.db.transaction() as session:
            row = ProviderBatch(
                batch_id=batch_id,
                model=model,
                state=ProviderBatchState.preparing,
                item_count=len(job_ids),
                created_at=now,
                updated_at=now,
            )
            session.add(row)
            session.flush()
            session.execute(insert(ProviderBatchItem), [{"job_id": j, "provider_batch_id": row.id} for j in job_ids])
            return row.id

    def open(self) -> list[ProviderBatchRecord]:
        """Provider batches not yet collected or cancelled, with their batch's status, oldest first."""
        with self.db.transaction() as session:
            rows = session.execute(
                select(ProviderBatch, Batch.status)
                .join(Batch, Batch.id == ProviderBatch.batch_id)
                .where(ProviderBatch.state.in_(_OPEN))
                .order_by(ProviderBatch.created_at)
            ).all()
            return [ProviderBatchRecord.of(row, status) for row, status in rows]

    def of_batch(self, batch_id: str) -> list[ProviderBatchRecord]:
        with self.db.transaction() as session:
            rows = session.scalars(
                select(ProviderBatch).where(ProviderBatch.batch_id == batch_id).order_by(ProviderBatch.created_at)
            )
            return [ProviderBatchRecord.of(row) for row in rows]

    def external_ids_since(self, since: datetime) -> frozenset[str]:
        """The provider ids recorded for provider batches planned since `since` (taken, when adopting)."""
        with self.db.transaction() as session:
            return frozenset(
                session.scalars(
                    select(ProviderBatch.external_id).where(
                        ProviderBatch.created_at >= since, ProviderBatch.external_id.is_not(None)
                    )
                )
            )

    def submitted(self, pbatch_id: str, external_id: str, external_state: str) -> bool:
        """The provider has it: record its id (once: False when another writer recorded one). Its
        batch counts as started from then (`started_at`, and the estimate of the time left)."""
        now = utcnow()
        with self.db.transaction() as session:
            batch_id = session.scalar(
                update(ProviderBatch)
                .where(ProviderBatch.id == pbatch_id, ProviderBatch.state == ProviderBatchState.preparing)
                .values(
                    state=ProviderBatchState.submitted,
                    external_id=external_id,
                    external_state=external_state,
                    updated_at=now,
                )
                .returning(ProviderBatch.batch_id)
            )
            if batch_id is None:
                return False
            batch_counters.add(session, batch_id, 0, CounterDelta(), started=now)
            return True

    def seen(self, pbatch_id: str, external_state: str) -> None:
        with self.db.transaction() as session:
            session.execute(
                update(ProviderBatch)
                .where(ProviderBatch.id == pbatch_id)
                .values(external_state=external_state, updated_at=utcnow())
            )

    def close(self, pbatch_id: str, state: ProviderBatchState, external_state: str | None = None) -> None:
        values = {"state": state, "updated_at": utcnow()}
        if external_state is not None:
            values["external_state"] = external_state
        with self.db.transaction() as session:
            session.execute(
                update(ProviderBatch)
                .where(ProviderBatch.id == pbatch_id, ProviderBatch.state.in_(_OPEN))
                .values(**values)
            )

    def queued_items(self, pbatch_id: str) -> list[JobRecord]:
        """The items of a provider batch that have not ended (and are not cancelled)."""
        with self.db.transaction() as session:
            rows = session.scalars(
                select(Job)
                .join(ProviderBatchItem, ProviderBatchItem.job_id == Job.id)
                .where(ProviderBatchItem.provider_batch_id == pbatch_id, Job.status == JobStatus.queued)
                .order_by(Job.batch_seq)
            )
            return [JobRecord.of(row) for row in rows]
