"""HTTP models of the jobs API: submit a call as a job, poll it, list and cancel jobs, see its webhooks."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.schemas.calls import CallRequest, CallResponse
from app.schemas.functions import FunctionCallRequest
from app.store.jobs import JobRecord
from app.store.tables import JobStatus
from app.store.tables_delivery import DeliveryStatus
from app.store.webhooks import DeliveryRecord

MAX_METADATA_BYTES = 16 * 1024
# With `function_id` the stored definition applies: these `/call` fields would be silently ignored.
DEFINITION_FIELDS = ("name", "instructions", "input_schema", "output_schema", "model", "configuration")


class WebhookIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(description="Where the job's outcome is POSTed (Standard Webhooks)")
    secret: str | list[str] | None = Field(
        None,
        description="`whsec_<base64>` signing secret, or up to 3 (newest first) while rotating. "
        "Generated and returned once when omitted.",
    )


class JobRequest(CallRequest):
    """The body of `/v2/call`, or `function_id` (+ `revision_id`) with the body of a function call."""

    name: str | None = Field(None, min_length=1, max_length=500, description="Required unless function_id is given")
    function_id: str | None = Field(None, description="Run this stored function instead of an inline task")
    revision_id: str | None = Field(None, description="With function_id: pin this revision (default: latest)")
    webhook: WebhookIn | None = None
    metadata: dict[str, Any] | None = Field(None, description="Yours; returned with the job and in its webhook")

    @field_validator("metadata")
    @classmethod
    def _small_metadata(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None and len(json.dumps(value)) > MAX_METADATA_BYTES:
            raise ValueError(f"must be at most {MAX_METADATA_BYTES} bytes of JSON")
        return value

    def call_request(self) -> CallRequest:
        return CallRequest.model_validate(
            self.model_dump(exclude={"function_id", "revision_id", "webhook", "metadata"}, exclude_unset=True)
        )

    def function_call(self) -> FunctionCallRequest:
        return FunctionCallRequest(
            input=self.input, parent_span_id=self.parent_span_id, examples=self.examples, tags=self.tags
        )


class JobLinks(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    self_: str = Field(alias="self")
    cancel: str
    deliveries: str


class JobWebhookOut(BaseModel):
    url: str
    secret: str | None = Field(None, description="Only in the answer that created the job, when generated")


class JobError(BaseModel):
    type: str
    message: str
    detail: Any = None


class JobOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    id: str
    object: Literal["job"] = "job"
    status: JobStatus
    name: str
    function_id: str | None = None
    revision_id: str | None = None
    span_id: str
    trace_id: str | None = Field(None, description="The trace the job's spans belong to (`GET /v2/traces/{id}`)")
    batch_id: str | None = Field(None, description="The batch the job is an item of")
    custom_id: str | None = Field(None, description="Its `custom_id` in that batch")
    tags: dict[str, str] | None = None
    metadata: dict[str, Any] | None = None
    input: Any = Field(None, description="The call's input; only when getting one job")
    attempts: int = Field(description="Times a worker started the job (more than 1 after a worker was lost)")
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    result: CallResponse | None = Field(None, description="When succeeded: what `/v2/call` answers")
    error: JobError | None = None
    webhook: JobWebhookOut | None = None
    links: JobLinks

    @classmethod
    def of(cls, job: JobRecord, *, show_secret: str | None = None, with_input: bool = False) -> JobOut:
        base = f"/v2/jobs/{job.id}"
        error = job.error
        return cls(
            id=job.id,
            status=job.status,
            name=job.name,
            function_id=job.function_id,
            revision_id=job.revision_id,
            span_id=job.span_id,
            trace_id=job.trace_id,
            batch_id=job.batch_id,
            custom_id=job.custom_id,
            tags=job.task.get("tags") or None,
            metadata=job.meta,
            input=job.task.get("input") if with_input else None,
            attempts=job.delivery_attempts,
            created_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
            result=CallResponse.model_validate(job.result) if job.result is not None else None,
            error=JobError(
                type=error.get("type") or "Error", message=error.get("message") or "", detail=error.get("detail")
            )
            if error
            else None,
            webhook=JobWebhookOut(url=job.webhook_url, secret=show_secret) if job.webhook_url else None,
            links=JobLinks(self_=base, cancel=f"{base}/cancel", deliveries=f"{base}/deliveries"),
        )


class DeliveryAttemptOut(BaseModel):
    number: int
    started_at: datetime
    duration_ms: int
    status_code: int | None = None
    error: str | None = None
    response_excerpt: str | None = None
    succeeded: bool
    next_attempt_at: datetime | None = None


class DeliveryOut(BaseModel):
    id: str
    job_id: str | None = Field(None, description="The job it is about (null for a batch's)")
    batch_id: str | None = Field(None, description="The batch it is about (null for a job's)")
    message_id: str = Field(description="The `webhook-id` header: the same on every attempt")
    event_type: str
    url: str
    status: DeliveryStatus
    attempt_count: int
    next_attempt_at: datetime | None = Field(None, description="When pending: the next attempt")
    last_status_code: int | None = None
    last_error: str | None = None
    created_at: datetime
    updated_at: datetime
    attempts: list[DeliveryAttemptOut]

    @classmethod
    def of(cls, delivery: DeliveryRecord) -> DeliveryOut:
        return cls(
            id=delivery.id,
            job_id=delivery.job_id,
            batch_id=delivery.batch_id,
            message_id=delivery.message_id,
            event_type=delivery.event_type,
            url=delivery.url,
            status=delivery.status,
            attempt_count=delivery.attempt_count,
            next_attempt_at=delivery.next_attempt_at if delivery.status is DeliveryStatus.pending else None,
            last_status_code=delivery.last_status_code,
            last_error=delivery.last_error,
            created_at=delivery.created_at,
            updated_at=delivery.updated_at,
            attempts=[DeliveryAttemptOut(**vars(a)) for a in delivery.attempts],
        )
