"""The `/call` flow: resolve the task, record function and job, enqueue, wait for the worker's result."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass

from celery import Celery
from starlette.concurrency import run_in_threadpool

from app.config import Settings
from app.engine.task import task_to_dict
from app.errors import BadRequest, CallTimedOut, ServiceUnavailable, StoredJobError
from app.providers.base import ModelResolver
from app.schemas.calls import CallRequest, CallResponse
from app.services.task_builder import build_task, function_definition
from app.services.waiter import JobWaiter
from app.store.functions import FunctionRepository
from app.store.jobs import JobRecord, JobRepository, NewJob
from app.store.projects import ProjectRef
from app.store.spans import SpanRepository
from app.store.tables import JobStatus
from workers.celery_app import INTERACTIVE_QUEUE, RUN_JOB


@dataclass
class CallService:
    settings: Settings
    resolver: ModelResolver
    functions: FunctionRepository
    jobs: JobRepository
    spans: SpanRepository
    celery: Celery
    waiter: JobWaiter

    async def submit(self, project: ProjectRef, request: CallRequest) -> JobRecord:
        """Validate, record and enqueue a call. Raises BadRequest before anything is written."""
        task = build_task(request, default_model=self.settings.default_model, resolver=self.resolver)
        parent = str(request.parent_span_id) if request.parent_span_id else None
        trace_id = str(uuid.uuid4())
        if parent:
            trace_id = await run_in_threadpool(self.spans.trace_of, project.id, parent)
            if trace_id is None:
                raise BadRequest("no span with this id in this project", field_name="parent_span_id")
        ref = await run_in_threadpool(
            self.functions.ensure_for_call, project.id, request.name, function_definition(request)
        )
        return await run_in_threadpool(
            self.jobs.create,
            NewJob(
                project_id=project.id,
                task=task_to_dict(task),
                trace_id=trace_id,
                function_id=ref.function_id,
                revision_id=ref.revision_id,
                parent_span_id=parent,
            ),
        )

    async def enqueue(self, job: JobRecord) -> None:
        try:
            await run_in_threadpool(self.celery.send_task, RUN_JOB, args=[job.id], queue=INTERACTIVE_QUEUE)
        except Exception as exc:
            await run_in_threadpool(self.jobs.discard_queued, job.id)
            raise ServiceUnavailable(
                "the job queue is unreachable; nothing was run, retry the request",
                detail=f"enqueue failed: {type(exc).__name__}",
            ) from exc

    async def wait_for_result(self, job: JobRecord, announced: asyncio.Event, timeout: float) -> CallResponse:
        """Wait (inside `waiter.expect(job.id)`) until the job is final; its response or its error."""

        async def is_done() -> bool:
            current = await run_in_threadpool(self.jobs.get, job.id)
            return current is not None and current.status.is_final

        if not await self.waiter.wait(announced, is_done, timeout):
            raise CallTimedOut(
                f"the call did not finish within {timeout:g} s; it keeps running",
                detail={"job_id": job.id, "span_id": job.span_id},
            )
        return response_of(await run_in_threadpool(self.jobs.get, job.id))

    async def run_and_wait(self, job: JobRecord) -> CallResponse:
        """Enqueue a submitted job and wait for its result."""
        with self.waiter.expect(job.id) as announced:
            await self.enqueue(job)
            return await self.wait_for_result(job, announced, self.settings.call_wait_seconds)

    async def call_and_wait(self, project: ProjectRef, request: CallRequest) -> CallResponse:
        return await self.run_and_wait(await self.submit(project, request))


def response_of(job: JobRecord) -> CallResponse:
    if job.status is JobStatus.succeeded and job.result is not None:
        return CallResponse.model_validate(job.result)
    raise StoredJobError(job.error or {"message": f"the job ended as {job.status.value}"})
