"""HTTP models of `/v2/batches`: the submission (JSON, or the `batch` part of a multipart upload), the
batch object, and one line of its results."""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.schemas.calls import CallResponse, ExampleIn, ModelInput
from app.schemas.jobs import MAX_METADATA_BYTES, JobError, WebhookIn
from app.store.batch_records import BatchRecord
from app.store.tables import JobStatus
from app.store.tables_batches import BatchStatus

_WINDOW = re.compile(r"[1-9][0-9]{0,5}[smhd]\Z")


class BatchFunctionIn(BaseModel):
    """An inline task definition: the `/v2/call` fields that are the same for every item."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=500, description="The task's name; creates the function")
    instructions: str | None = None
    input_schema: dict[str, Any] | None = Field(None, description="Every item's `input` is checked against it")
    output_schema: dict[str, Any] | None = None
    model: ModelInput | None = None
    configuration: dict[str, Any] | None = None
    examples: list[ExampleIn] | None = None
    tags: dict[str, str] | None = Field(None, description="Tags of every item (an item's own tags win)")


class BatchItemIn(BaseModel):
    """One item; in an upload, one JSONL line."""

    model_config = ConfigDict(extra="forbid")

    custom_id: str = Field(min_length=1, max_length=255, description="Yours, unique in the batch")
    input: Any
    tags: dict[str, str] | None = None


class BatchSpec(BaseModel):
    """A batch without its items: the JSON body less `items`, or the `batch` part of an upload."""

    model_config = ConfigDict(extra="forbid")

    function_id: str | None = Field(None, description="Run this stored function (exactly one of this and function)")
    revision_id: str | None = Field(None, description="With function_id: pin this revision (default: latest)")
    function: BatchFunctionIn | None = None
    webhook: WebhookIn | None = Field(None, description="Called once, when the batch ends")
    metadata: dict[str, Any] | None = None
    on_invalid: Literal["reject", "skip"] = Field(
        "reject", description="reject: refuse the batch if any item is invalid; skip: run the valid ones"
    )
    completion_window: str | None = Field(
        None, description="e.g. `24h`. With `execution: auto`, 24h or more sends the batch to the provider's batch API"
    )
    execution: Literal["queue", "provider", "auto"] = Field(
        "auto",
        description="queue: the workers call the models; provider: the provider's batch API (half price, "
        "within 24 h); auto: provider when completion_window is 24h or more and the first model's provider "
        "has a batch API, else queue",
    )

    @field_validator("metadata")
    @classmethod
    def _small_metadata(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None and len(json.dumps(value)) > MAX_METADATA_BYTES:
            raise ValueError(f"must be at most {MAX_METADATA_BYTES} bytes of JSON")
        return value

    @field_validator("completion_window")
    @classmethod
    def _window(cls, value: str | None) -> str | None:
        if value is not None and not _WINDOW.match(value):
            raise ValueError("must be a number followed by s, m, h or d, e.g. 24h")
        return value


class BatchCreate(BatchSpec):
    """The `application/json` body."""

    items: list[BatchItemIn] = Field(description="For large batches, upload JSONL as multipart instead")


class BatchCounts(BaseModel):
    total: int
    queued: int
    running: int
    succeeded: int
    failed: int
    cancelled: int


class BatchUsage(BaseModel):
    input_tokens: int
    output_tokens: int
    total_tokens: int


class BatchCost(BaseModel):
    generation: float
    platform: float
    total: float


class InvalidItemOut(BaseModel):
    line: int = Field(description="1-based line of the upload (position in `items` for JSON)")
    custom_id: str | None = None
    reason: str


class BatchLinks(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    self_: str = Field(alias="self")
    results: str


class BatchWebhookOut(BaseModel):
    url: str
    secret: str | None = Field(None, description="Only in the answer that created the batch, when generated")


class ProviderBatchOut(BaseModel):
    """One provider batch carrying some of this batch's items."""

    id: str = Field(description="Conveyor's id for it (sent to the provider as metadata)")
    provider_batch_id: str | None = Field(None, description="The provider's id, once it has the batch")
    model: str
    state: str = Field(description="preparing, submitted, collected, cancelled")
    provider_state: str | None = Field(None, description="The provider's own status, as last seen")
    items: int


class BatchOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    id: str
    object: Literal["batch"] = "batch"
    status: BatchStatus
    function_id: str | None = None
    revision_id: str | None = None
    counts: BatchCounts
    usage: BatchUsage
    cost: BatchCost
    estimated_seconds_remaining: float | None = Field(None, description="From the pace so far; null until known")
    invalid_items: list[InvalidItemOut] = Field(description="Skipped lines (on_invalid: skip), at most 100")
    invalid_count: int = 0
    metadata: dict[str, Any] | None = None
    completion_window: str | None = None
    execution: Literal["queue", "provider"] = Field("queue", description="How the batch runs (the choice made)")
    provider_batches: list[ProviderBatchOut] = Field(default_factory=list, description="With execution provider")
    webhook: BatchWebhookOut | None = None
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    links: BatchLinks

    @classmethod
    def of(cls, batch: BatchRecord, *, now: datetime, show_secret: str | None = None) -> BatchOut:
        t = batch.totals
        base = f"/v2/batches/{batch.id}"
        return cls(
            id=batch.id,
            status=batch.status,
            function_id=batch.function_id,
            revision_id=batch.revision_id,
            counts=BatchCounts(
                total=batch.total,
                queued=batch.queued,
                running=t.running,
                succeeded=t.succeeded,
                failed=t.failed,
                cancelled=t.cancelled,
            ),
            usage=BatchUsage(input_tokens=t.input_tokens, output_tokens=t.output_tokens, total_tokens=t.total_tokens),
            cost=BatchCost(
                generation=t.cost_generation, platform=t.cost_platform, total=t.cost_generation + t.cost_platform
            ),
            estimated_seconds_remaining=_eta(batch, now),
            invalid_items=[InvalidItemOut(**item) for item in batch.invalid_items],
            invalid_count=batch.invalid_count,
            metadata=batch.meta,
            completion_window=batch.completion_window,
            execution=batch.execution,
            provider_batches=[
                ProviderBatchOut(
                    id=p.id,
                    provider_batch_id=p.external_id,
                    model=p.model,
                    state=p.state.value,
                    provider_state=p.external_state,
                    items=p.item_count,
                )
                for p in batch.provider_batches
            ],
            webhook=BatchWebhookOut(url=batch.webhook_url, secret=show_secret) if batch.webhook_url else None,
            created_at=batch.created_at,
            started_at=t.started_at,
            finished_at=batch.finished_at,
            links=BatchLinks(self_=base, results=f"{base}/results"),
        )


def _eta(batch: BatchRecord, now: datetime) -> float | None:
    """Items left at the pace since the first item started; None before any ended, and once the batch has."""
    t = batch.totals
    if batch.status.is_final or t.started_at is None or t.ended == 0:
        return None
    elapsed = max((now - t.started_at).total_seconds(), 1e-3)
    return round((batch.total - t.ended) * elapsed / t.ended, 1)


class BatchResultLine(BaseModel):
    """One line of `GET /v2/batches/{id}/results` (NDJSON)."""

    custom_id: str
    status: JobStatus
    job_id: str
    result: CallResponse | None = Field(None, description="When succeeded: what `/v2/call` answers")
    error: JobError | None = None
