"""Jobs as a delivery mode: submit and answer at once (202), poll or long-poll, list, cancel, webhooks.

Also the `/v2/call` flow with its delivery choices: wait for the result, or answer 202 with the job
when the caller prefers (`Prefer: respond-async`) or when the wait runs out.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

import redis.asyncio as aioredis
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from app.config import Settings
from app.errors import (
    AcceptedJobUnavailable,
    BadRequest,
    CallTimedOut,
    Conflict,
    ConveyorError,
    NotFound,
    StoredJobError,
)
from app.metrics.counts import add_to
from app.metrics.jobs import cancelled_counts
from app.schemas.calls import CallRequest, CallResponse
from app.schemas.functions import FunctionCallRequest
from app.schemas.jobs import DEFINITION_FIELDS, JobRequest
from app.schemas.paging import Page
from app.secrets import secret_box
from app.services.call_spans import call_span
from app.services.calls import CallService
from app.services.idempotency import Accepted, IdempotencyGuard
from app.services.stream_messages import StreamMessage
from app.services.waiter import Announcement, JobWaiter
from app.services.webhook_delivery import DISPATCH_GRACE, WebhookDispatcher
from app.services.webhooks import check_webhook_url, new_delivery, parse_secrets, seal_secrets
from app.store import keys
from app.store.db import DATABASE_UNAVAILABLE
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
class CallOutcome:
    """What `/v2/call` answers: the result, its stored error, or (neither) 202 with the running job."""

    job: JobRecord
    replayed: bool
    response: CallResponse | None = None
    error: ConveyorError | None = None


@dataclass(frozen=True)
class SubmittedJob:
    job: JobRecord
    replayed: bool
    generated_secret: str | None = None  # shown once, in the answer that created the job


def needs_enqueue(accepted: Accepted) -> bool:
    """A new job is enqueued; so is a replayed one still queued, as its first request may have died
    between writing it and enqueueing it (a second message for a job already queued is a no-op: only
    one claim can take it)."""
    return not accepted.replayed or accepted.job.status is JobStatus.queued


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
    calls: CallService
    jobs: JobRepository
    deliveries: WebhookDeliveryRepository
    dispatcher: WebhookDispatcher
    guard: IdempotencyGuard
    waiter: JobWaiter
    redis: aioredis.Redis

    # --- /v2/call --------------------------------------------------------------------------------

    async def call(
        self, project: ProjectRef, request: CallRequest, *, respond_async: bool, idempotency_key: str | None
    ) -> CallOutcome:
        """`POST /v2/call`: the result, or 202 with the job when preferred or when the wait runs out."""

        async def submit(binding: KeyBinding | None) -> JobRecord:
            # Answered only with its result (or an error) unless the wait runs out: see `_call`.
            return await self.calls.submit(project, request, durable=respond_async, binding=binding)

        return await self._call(
            project, "POST /v2/call", request, submit, respond_async, idempotency_key, durable=respond_async
        )

    async def call_function(
        self,
        project: ProjectRef,
        function_id: str,
        revision_id: str | None,
        body: FunctionCallRequest,
        *,
        respond_async: bool = False,
        idempotency_key: str | None = None,
    ) -> CallOutcome:
        """The same for `POST /v2/functions/{id}/call[/{revision_id}]`."""

        async def submit(binding: KeyBinding | None) -> JobRecord:
            return await self.calls.submit_function_call(project, function_id, revision_id, body, binding=binding)

        endpoint = f"POST /v2/functions/{function_id}/call/{revision_id or ''}"
        return await self._call(project, endpoint, body, submit, respond_async, idempotency_key, durable=True)

    async def _call(
        self,
        project: ProjectRef,
        endpoint: str,
        body: BaseModel,
        submit: Callable[[KeyBinding | None], Awaitable[JobRecord]],
        respond_async: bool,
        idempotency_key: str | None,
        *,
        durable: bool,
    ) -> CallOutcome:
        """`durable`: `submit` writes the job's row with a commit that waits for the disk."""
        accepted = await self.guard.accept(project, idempotency_key, endpoint, body, submit)
        job, replayed = accepted.job, accepted.replayed
        if respond_async or job.status.is_final:
            if needs_enqueue(accepted):
                await self.calls.enqueue(job)
            return self._outcome(job, replayed) if job.status.is_final else CallOutcome(job, replayed)
        with self.waiter.expect(job.id) as announced:
            if needs_enqueue(accepted):
                await self.calls.enqueue(job)
            try:
                return await self._wait(project, job, replayed, announced)
            except DATABASE_UNAVAILABLE as exc:
                raise await self._unavailable_while_waiting(job, durable=durable and not replayed) from exc

    async def _wait(self, project: ProjectRef, job: JobRecord, replayed: bool, announced: Announcement) -> CallOutcome:
        try:
            response = await self.calls.wait_for_result(job, announced, self.settings.call_wait_seconds)
        except CallTimedOut:
            # A 202 promises the job survives: its row may have been written without waiting for the disk.
            await run_in_threadpool(self.jobs.make_durable, job.id)
            return CallOutcome(await self._get(project, job.id), replayed)
        except StoredJobError as exc:
            return CallOutcome(job, replayed, error=exc)
        return CallOutcome(job, replayed, response=response)

    async def _unavailable_while_waiting(self, job: JobRecord, *, durable: bool) -> AcceptedJobUnavailable:
        """The 503 of a waiting call whose job was accepted: it names the job, which the worker runs to its
        end (a result computed while the database is away is held and written once it is back, see
        workers/outage.py), so the caller polls it instead of sending the call again.

        `detail.stored` says whether the row is known to be on disk. A waiting call's row is written with
        a commit that does not wait for the disk (JobRepository.create); one attempt is made to flush it.
        Not known stored: a database that crashed (a clean restart or failover loses nothing) within a
        fraction of a second of accepting the call may have lost the job, key and all; polling it then
        answers 404 once the database is back, nothing of it was stored or billed, and the call may be
        sent again."""
        stored = durable
        if not stored:
            try:
                await run_in_threadpool(self.jobs.make_durable, job.id)
                stored = True
            except DATABASE_UNAVAILABLE:
                pass
        log.warning("database unavailable while a call waited", extra={"job_id": job.id, "stored": stored})
        poll = f"poll GET /v2/jobs/{job.id} for its result instead of sending the call again"
        if not stored:
            poll += " (a 404 once the database is back means it was lost with the database: send it again)"
        return AcceptedJobUnavailable(
            "the database became unavailable while the call was waiting; "
            f"its job was accepted and keeps running: {poll}",
            job_id=job.id,
            detail={"job_id": job.id, "span_id": job.span_id, "stored": stored},
        )

    @staticmethod
    def _outcome(job: JobRecord, replayed: bool) -> CallOutcome:
        if job.status is JobStatus.succeeded and job.result is not None:
            return CallOutcome(job, replayed, response=CallResponse.model_validate(job.result))
        return CallOutcome(job, replayed, error=StoredJobError(job.error or {"message": "the job did not succeed"}))

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
                return await self.calls.submit_function_call(
                    project, request.function_id, request.revision_id, body, delivery=options, binding=binding
                )
            elif request.revision_id is not None:
                raise BadRequest("is only meaningful with function_id", field_name="revision_id")
            elif request.name is None:
                raise BadRequest("is required unless function_id is given", field_name="name")
            return await self.calls.submit(project, request.call_request(), delivery=options, binding=binding)

        accepted = await self.guard.accept(project, idempotency_key, "POST /v2/jobs", request, create)
        if needs_enqueue(accepted):
            await self.calls.enqueue(accepted.job)
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
