"""What the job store takes and gives: plain, frozen records, free of sessions and rows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from app.store.rows import NewRow
from app.store.tables import Base, JobStatus, Span


@dataclass(frozen=True)
class DeliveryOptions:
    """How a submitted job's outcome is delivered, besides being stored."""

    stream: bool = False
    webhook_url: str | None = None
    webhook_secrets: tuple[str, ...] = ()
    meta: dict[str, Any] | None = None


@dataclass(frozen=True)
class NewJob:
    project_id: str
    task: dict[str, Any]
    trace_id: str
    function_id: str | None = None
    revision_id: str | None = None
    parent_span_id: str | None = None
    delivery: DeliveryOptions = DeliveryOptions()
    idempotency: Any = None  # a store.idempotency.KeyBinding to bind in the job's own transaction
    trace_context: str | None = None  # the submitting request's, when the API exports traces (app/observability/)


@dataclass(frozen=True, slots=True)  # slots: a worker holds one per call in flight
class JobRecord:
    id: str
    project_id: str
    status: JobStatus
    span_id: str
    trace_id: str
    task: dict[str, Any]
    function_id: str | None
    revision_id: str | None
    parent_span_id: str | None
    result: dict[str, Any] | None
    error: dict[str, Any] | None
    delivery_attempts: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    stream: bool = False
    webhook_url: str | None = None
    webhook_secrets: tuple[str, ...] = ()
    meta: dict[str, Any] | None = None
    batch_id: str | None = None  # a batch item: `task` holds only name, input and tags
    custom_id: str | None = None
    # The trace context (JSON of its propagation headers) that every run of the job is traced under: the
    # submitting request's; for a batch item, its batch's (filled in with its template when claimed).
    trace_context: str | None = None

    @property
    def name(self) -> str:
        """The task's (function's) name as the job ran it."""
        return str(self.task.get("name") or "")

    @classmethod
    def of(cls, job: Any) -> JobRecord:
        """From a `Job` object or a row of the jobs table (they share attribute names)."""
        return cls(
            id=job.id,
            project_id=job.project_id,
            status=JobStatus(job.status),
            span_id=job.span_id,
            trace_id=job.trace_id,
            task=job.task,
            function_id=job.function_id,
            revision_id=job.revision_id,
            parent_span_id=job.parent_span_id,
            result=job.result,
            error=job.error,
            delivery_attempts=job.delivery_attempts,
            created_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
            stream=bool(job.stream),
            webhook_url=job.webhook_url,
            webhook_secrets=tuple(job.webhook_secrets or ()),
            meta=job.meta,
            batch_id=job.batch_id,
            custom_id=job.custom_id,
            trace_context=job.trace_context,
        )


@dataclass(frozen=True)
class JobFilters:
    statuses: tuple[JobStatus, ...] = ()
    function_name: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    created_after: datetime | None = None  # inclusive
    created_before: datetime | None = None  # exclusive
    batch_id: str | None = None  # only this batch's items
    include_batch_items: bool = False  # else (and without batch_id) interactive jobs only


@dataclass(frozen=True, slots=True)
class Claim:
    """A worker's right to run a job until `expires_at`, proven by `token`."""

    job: JobRecord
    token: str
    expires_at: datetime


@dataclass(frozen=True)
class Finish:
    """A job's final state and the rows that come with it; `token` is the lease holder's (a worker's
    finish), None for a cancellation."""

    job_id: str
    token: str | None
    status: JobStatus
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    spans: Sequence[Span | NewRow] = ()
    extra_rows: Sequence[Base] = ()
