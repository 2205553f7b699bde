"""What the batch store takes and gives: plain, frozen records, free of sessions and rows."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from app.store.batch_counters import BatchTotals
from app.store.tables import Base, JobStatus
from app.store.tables_batches import Batch, BatchStatus


@dataclass(frozen=True)
class NewBatch:
    project_id: str
    task_template: dict[str, Any]
    function_id: str | None = None
    revision_id: str | None = None
    webhook_url: str | None = None
    meta: dict[str, Any] | None = None
    completion_window: str | None = None
    execution: str = "queue"  # or "provider"
    webhook_secrets: tuple[str, ...] = ()  # signs the batch's webhook (kept on the batch, never shown)
    trace_context: str | None = None  # the submitting request's, when the API exports traces (items link to it)


@dataclass(frozen=True)
class BatchTemplate:
    task: dict[str, Any]  # a TaskSpec dict without input and tags
    trace_context: str | None = None


@dataclass(frozen=True)
class NewItem:
    """One accepted item: its own part of the task (the rest is the batch's template)."""

    custom_id: str
    input: Any
    tags: dict[str, str]


@dataclass(frozen=True)
class BatchRecord:
    id: str
    project_id: str
    status: BatchStatus
    function_id: str | None
    revision_id: str | None
    task_template: dict[str, Any]
    anchor_job_id: str | None
    webhook_url: str | None
    meta: dict[str, Any] | None
    completion_window: str | None
    total: int
    invalid_count: int
    invalid_items: tuple[dict[str, Any], ...]
    created_at: datetime
    cancel_requested_at: datetime | None
    finished_at: datetime | None
    totals: BatchTotals = field(default_factory=BatchTotals)
    execution: str = "queue"
    webhook_secrets: tuple[str, ...] = ()
    provider_batches: tuple[Any, ...] = ()  # ProviderBatchRecords, where the reader attached them

    @property
    def queued(self) -> int:
        return max(0, self.total - self.totals.running - self.totals.ended)

    @classmethod
    def of(cls, row: Batch, totals: BatchTotals | None) -> BatchRecord:
        return cls(
            id=row.id,
            project_id=row.project_id,
            status=BatchStatus(row.status),
            function_id=row.function_id,
            revision_id=row.revision_id,
            task_template=row.task_template,
            anchor_job_id=row.anchor_job_id,
            webhook_url=row.webhook_url,
            meta=row.meta,
            completion_window=row.completion_window,
            total=row.total,
            invalid_count=row.invalid_count,
            invalid_items=tuple(row.invalid_items or ()),
            created_at=row.created_at,
            cancel_requested_at=row.cancel_requested_at,
            finished_at=row.finished_at,
            totals=totals or BatchTotals(),
            execution=row.execution or "queue",
            webhook_secrets=tuple(row.webhook_secrets or ()),
        )


@dataclass(frozen=True)
class ItemOutcome:
    """One item as the results stream shows it."""

    seq: int
    job_id: str
    custom_id: str
    status: JobStatus
    result: dict[str, Any] | None
    error: dict[str, Any] | None
    task: dict[str, Any]


EndRows = Callable[[BatchRecord], Sequence[Base]]
"""Builds the rows written with a batch's final state (its webhook delivery), from the ended batch."""
