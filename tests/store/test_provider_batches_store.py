"""Provider-batch records on both backends: each item held by one provider batch, the intent before
the provider's id, items ending once from `queued` (an answer read twice bills once), and cancel."""

from __future__ import annotations

import pytest

from app.services.batch_intake import BatchIntake
from app.store.batch_records import NewBatch, NewItem
from app.store.batches import BatchRepository
from app.store.db import Database
from app.store.job_records import Finish
from app.store.jobs import JobRepository
from app.store.projects import ProjectRepository
from app.store.provider_batches import ProviderBatchRepository
from app.store.tables import JobStatus, Span
from app.store.tables_provider_batches import ProviderBatchState

CANCELLED = {"type": "BatchCancelled", "message": "cancelled"}


def provider_batch(db: Database, count: int) -> tuple[BatchRepository, str]:
    project = ProjectRepository(db).ensure_project("p")
    batches = BatchRepository(db)
    new = NewBatch(project_id=project.id, task_template={"name": "t"}, execution="provider")
    items = (NewItem(f"c{i}", i, {}) for i in range(count))
    return batches, BatchIntake(batches).run(new, items, skip_invalid=False).batch_id


def billed(job_id: str, project_id: str, trace_id: str, span_id: str) -> list[Span]:
    call = Span(id=span_id, project_id=project_id, trace_id=trace_id, job_id=job_id, name="t", type="call")
    call.input_tokens, call.output_tokens, call.total_tokens, call.cost_generation = 10, 5, 15, 0.25
    return [call]


def test_items_are_held_once_and_end_once(db):
    batches, batch_id = provider_batch(db, 5)
    store, jobs = ProviderBatchRepository(db), JobRepository(db)
    assert store.batches_to_split() == [batch_id]
    first = store.unheld_items(batch_id, limit=3)
    intent = store.record_intent(batch_id, "fake/m", [item.id for item in first])
    rest = store.unheld_items(batch_id, limit=10)
    assert len(rest) == 2 and {i.id for i in rest}.isdisjoint(i.id for i in first)
    store.record_intent(batch_id, "fake/m", [item.id for item in rest])
    assert store.batches_to_split() == []  # every item is held

    [planned, _] = store.open()
    assert planned.id == intent and planned.state is ProviderBatchState.preparing and planned.item_count == 3
    assert store.submitted(intent, "batch_1", "in_progress") and not store.submitted(intent, "batch_2", "x")
    assert store.external_ids_since(planned.created_at) == frozenset({"batch_1"})
    assert batches.get(batch_id).totals.started_at is not None

    item = first[0]
    finish = Finish(
        item.id,
        None,
        JobStatus.succeeded,
        {"ok": 1},
        None,
        billed(item.id, item.project_id, item.trace_id, item.span_id),
    )
    assert jobs.end_queued([finish]) == [True]
    again = Finish(
        item.id, None, JobStatus.succeeded, {"ok": 1}, None, billed(item.id, item.project_id, item.trace_id, "other")
    )
    assert jobs.end_queued([again]) == [False]  # read twice: ended and billed once
    totals = batches.get(batch_id).totals
    assert (totals.succeeded, totals.running, totals.cost_generation) == (1, 0, pytest.approx(0.25))
    assert [i.id for i in store.queued_items(intent)] == [i.id for i in first[1:]]

    assert batches.request_cancel(batch_id, error=CANCELLED) == 4  # held items are queued: cancelled at once
    assert store.queued_items(intent) == []
    assert jobs.end_queued([Finish(first[1].id, None, JobStatus.succeeded, {"ok": 1})]) == [False]
    store.close(intent, ProviderBatchState.cancelled, "cancelled")
    [left] = store.open()
    assert left.id != intent and [p.state for p in store.of_batch(batch_id)] == [
        ProviderBatchState.cancelled,
        ProviderBatchState.preparing,
    ]
