"""Jobs as a delivery mode: submit and answer at once (202), poll or long-poll, list, cancel, webhooks.

A job is submitted through CallSubmitter (app/services/submission.py), as every call is."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

import redis.asyncio as aioredis
from starlette.concurrency import run_in_threadpool

from app.config import Settings
from app.errors import (
    BadRequest,
    Conflict,
    NotFound,
)
from app.metrics.counts import add_to
from app.metrics.jobs import cancelled_counts
from app.schemas.jobs import DEFINITION_FIELDS, JobRequest
from app.schemas.paging import Page
from app.secrets import secret_box
from app.services.call_spans import call_span
from app.services.idempotency import IdempotencyGuard
from app.services.stream_messages import StreamMessage
from app.services.submission import CallSubmitter, needs_enqueue
from app.services.waiter import JobWaiter
from app.services.webhook_delivery import DISPATCH_GRACE, WebhookDispatcher
from app.services.webhooks import check_webhook_url, new_delivery, parse_secrets, seal_secrets
from app.store import keys
from app.store.idempotency import KeyBinding
from app.store.job_records import DeliveryOptions
from app.store.jobs import JobFilters, JobRecord, JobRepository
from app.store.projects import ProjectRef
from app.store.tables import JobStatus
from app.store.webhooks import DeliveryRecord, WebhookDeliveryRepository

log = logging.getLogger("conveyor.jobs")

CANCELLED_ERROR = {
    "type": "JobCancelled",
    "message": "the job was cancelled",
    "detail": "the job was cancelled before it finished; no result was produced",
    "status_code": 409,
}


@dataclass(frozen=True)
class SubmittedJob:
    job: JobRecord
    replayed: bool
    generated_secret: str | None = None  # shown once, in the answer that created the job


def parse_job_filters(
    statuses: list[str], name: str | None, tags: list[str], after: datetime | None, before: datetime | None
) -> JobFilters:
    try:
        parsed = tuple(JobStatus(s) for s in statuses)
    except ValueError:
        raise BadRequest(f"must be one of {', '.join(s.value for s in JobStatus)}", field_name="status") from None
    pairs = {}
    for tag in tags:
        key, sep, value = tag.partition(":")
        if not sep or not key:
            raise BadRequest("must be key:value", field_name="tag")
        pairs[key] = value
    return JobFilters(parsed, name, pairs, after, before)


@dataclass
class JobService:
    settings: Settings
    submitter: CallSubmitter
    jobs: JobRepository
    deliveries: WebhookDeliveryRepository
    dispatcher: WebhookDispatcher
    guard: IdempotencyGuard
    waiter: JobWaiter
    redis: aioredis.Redis

    # --- /v2/jobs --------------------------------------------------------------------------------

    async def submit(self, project: ProjectRef, request: JobRequest, *, idempotency_key: str | None) -> SubmittedJob:
        """Validate, record and enqueue a job; 400s (webhook included) come before anything is written."""
        options, generated = await self._delivery_options(request)

        async def create(binding: KeyBinding | None) -> JobRecord:
            if request.function_id is not None:
                given = [f for f in DEFINITION_FIELDS if getattr(request, f) is not None]
                if given:
                    raise BadRequest(
                        "cannot be combined with function_id (the stored definition applies)", field_name=given[0]
                    )
                body = request.function_call()
                return await self.submitter.submit_function_call(
                    project, request.function_id, request.revision_id, body, delivery=options, binding=binding
                )
            elif request.revision_id is not None:
                raise BadRequest("is only meaningful with function_id", field_name="revision_id")
            elif request.name is None:
                raise BadRequest("is required unless function_id is given", field_name="name")
            return await self.submitter.submit(project, request.call_request(), delivery=options, binding=binding)

        accepted = await self.guard.accept(project, idempotency_key, "POST /v2/jobs", request, create)
        if needs_enqueue(accepted):
            await self.submitter.enqueue(accepted.job)
        if accepted.replayed:
            return SubmittedJob(accepted.job, replayed=True)
        return SubmittedJob(accepted.job, replayed=False, generated_secret=generated)

    async def _delivery_options(self, request: JobRequest) -> tuple[DeliveryOptions, str | None]:
        if request.webhook is None:
            return DeliveryOptions(meta=request.metadata), None
        secrets = parse_secrets(request.webhook.secret)
        await check_webhook_url(request.webhook.url, allow_private=self.settings.allow_private_webhooks)
        generated = secrets[0] if request.webhook.secret is None else None
        sealed = seal_secrets(secrets, secret_box(self.settings.secret_key))
        options = DeliveryOptions(webhook_url=request.webhook.url, webhook_secrets=sealed, meta=request.metadata)
        return options, generated

    async def get(self, project: ProjectRef, job_id: str, *, wait: float = 0) -> JobRecord:
        """The job now, or (with `wait` seconds, bounded) as soon as it ends within that time."""
        if wait < 0:
            raise BadRequest("must be 0 or more seconds", field_name="wait")
        wait = min(wait, self.settings.job_max_wait_seconds)
        with self.waiter.expect(job_id) as announced:
            job = await self._get(project, job_id)
            if wait == 0 or job.status.is_final:
                return job

            async def is_done() -> bool:
                current = await run_in_threadpool(self.jobs.get, job_id)
                return current is not None and current.status.is_final

            await self.waiter.wait(announced, is_done, wait)
        return await self._get(project, job_id)

    async def find(self, project: ProjectRef, filters: JobFilters, page: Page) -> tuple[list[JobRecord], int]:
        return await run_in_threadpool(self.jobs.find, project.id, filters, offset=page.offset, limit=page.limit)

    async def cancel(self, project: ProjectRef, job_id: str) -> JobRecord:
        """Queued: cancelled at once. Running: cancelled now, and its worker abandons the provider call
        within moments. The call span records the cancellation with no usage: nothing is billed."""
        job = await self._get(project, job_id)
        if job.status is JobStatus.cancelled:
            return job
        if job.status.is_final:
            raise Conflict(
                f"the job already {job.status.value}",
                detail=f"job_id: {job_id} has ended; only queued or running jobs can be cancelled",
            )
        span = call_span(job, started_at=job.started_at, error=f"JobCancelled: {CANCELLED_ERROR['detail']}")
        delivery = new_delivery(
            job,
            JobStatus.cancelled,
            error=CANCELLED_ERROR,
            max_inline_bytes=self.settings.webhook_max_inline_bytes,
            grace=DISPATCH_GRACE,
        )
        extra = [delivery] if delivery is not None else []
        if not await run_in_threadpool(self.jobs.cancel, job.id, error=CANCELLED_ERROR, spans=[span], extra_rows=extra):
            current = await self._get(project, job_id)
            if current.status is JobStatus.cancelled:
                return current
            raise Conflict(f"the job {current.status.value} meanwhile", detail=f"job_id: {job_id} has ended")
        await self._announce_cancel(job)
        if delivery is not None:
            await run_in_threadpool(self.dispatcher.dispatch, delivery.id)
        return await self._get(project, job_id)

    async def _announce_cancel(self, job: JobRecord) -> None:
        # The stored state is already final: if Redis is unreachable, the worker notices at its next
        # lease renewal and waiters at their next re-check. One round trip, which also counts it.
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                add_to(pipe, cancelled_counts(1))
                pipe.publish(keys.job_cancel_channel(job.id), "cancel")
                pipe.publish(keys.job_done_channel(job.id), JobStatus.cancelled.value)
                if job.stream:
                    pipe.publish(keys.job_stream_channel(job.id), StreamMessage("end").encode())
                await pipe.execute()
        except Exception:
            log.warning("could not announce a cancellation", extra={"job_id": job.id}, exc_info=True)

    # --- webhook deliveries ----------------------------------------------------------------------

    async def deliveries_of(self, project: ProjectRef, job_id: str, page: Page) -> tuple[list[DeliveryRecord], int]:
        await self._get(project, job_id)
        return await run_in_threadpool(
            self.deliveries.for_job, project.id, job_id, offset=page.offset, limit=page.limit
        )

    async def redeliver(self, project: ProjectRef, job_id: str, delivery_id: str) -> DeliveryRecord:
        """Send a delivery again now (with a fresh retry schedule), whatever became of it."""
        await self._get(project, job_id)
        delivery = await run_in_threadpool(self.deliveries.get, project.id, job_id, delivery_id)
        if delivery is None:
            raise NotFound("delivery not found", detail=f"delivery_id: no delivery {delivery_id} of this job")
        if not await run_in_threadpool(self.deliveries.reset_for_redelivery, delivery_id):
            raise Conflict("the delivery is being sent right now", detail="delivery_id: retry once this attempt ends")
        await run_in_threadpool(self.dispatcher.dispatch, delivery_id)
        return await run_in_threadpool(self.deliveries.get, project.id, job_id, delivery_id)

    async def _get(self, project: ProjectRef, job_id: str) -> JobRecord:
        job = await run_in_threadpool(self.jobs.get, job_id, project_id=project.id)
        if job is None:
            raise NotFound("job not found", detail=f"job_id: no job {job_id} in this project")
        return job
