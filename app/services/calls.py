"""The `/v2/call` flow: submit the job (app/services/submission.py), then wait for the worker's result,
or answer 202 with the job when the caller prefers (`Prefer: respond-async`) or when the wait runs out."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from app.config import Settings
from app.errors import CallTimedOut, ConveyorError, NotFound, StoredJobError
from app.schemas.calls import CallRequest, CallResponse
from app.schemas.functions import FunctionCallRequest
from app.services.announcements import JobEnding, decode_ending
from app.services.call_outage import unavailable_while_waiting
from app.services.idempotency import IdempotencyGuard
from app.services.submission import CallSubmitter, needs_enqueue
from app.services.waiter import Announcement, JobWaiter
from app.store.db import DATABASE_UNAVAILABLE
from app.store.idempotency import KeyBinding
from app.store.jobs import JobRecord, JobRepository
from app.store.projects import ProjectRef
from app.store.tables import JobStatus


@dataclass(frozen=True)
class CallOutcome:
    """What `/v2/call` answers: the result, its stored error, or (neither) 202 with the running job."""

    job: JobRecord
    replayed: bool
    response: CallResponse | None = None
    error: ConveyorError | None = None


@dataclass
class CallService:
    settings: Settings
    submitter: CallSubmitter  # records and enqueues the job
    jobs: JobRepository
    waiter: JobWaiter
    guard: IdempotencyGuard  # an Idempotency-Key's replay of `/v2/call`

    # --- /v2/call --------------------------------------------------------------------------------

    async def call(
        self, project: ProjectRef, request: CallRequest, *, respond_async: bool, idempotency_key: str | None
    ) -> CallOutcome:
        """`POST /v2/call`: the result, or 202 with the job when preferred or when the wait runs out."""

        async def submit(binding: KeyBinding | None) -> JobRecord:
            # Answered only with its result (or an error) unless the wait runs out: see `_call`.
            return await self.submitter.submit(project, request, durable=respond_async, binding=binding)

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
            return await self.submitter.submit_function_call(project, function_id, revision_id, body, binding=binding)

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
                await self.submitter.enqueue(job)
            return self._outcome(job, replayed) if job.status.is_final else CallOutcome(job, replayed)
        with self.waiter.expect(job.id) as announced:
            if needs_enqueue(accepted):
                await self.submitter.enqueue(job)
            try:
                return await self._wait(project, job, replayed, announced)
            except DATABASE_UNAVAILABLE as exc:
                raise await unavailable_while_waiting(self.jobs, job, durable=durable and not replayed) from exc

    async def _wait(self, project: ProjectRef, job: JobRecord, replayed: bool, announced: Announcement) -> CallOutcome:
        try:
            response = await self.wait_for_result(job, announced, self.settings.call_wait_seconds)
        except CallTimedOut:
            # A 202 promises the job survives: its row may have been written without waiting for the disk.
            await run_in_threadpool(self.jobs.make_durable, job.id)
            return CallOutcome(await self._current(job), replayed)
        except StoredJobError as exc:
            return CallOutcome(job, replayed, error=exc)
        return CallOutcome(job, replayed, response=response)

    @staticmethod
    def _outcome(job: JobRecord, replayed: bool) -> CallOutcome:
        if job.status is JobStatus.succeeded and job.result is not None:
            return CallOutcome(job, replayed, response=CallResponse.model_validate(job.result))
        return CallOutcome(job, replayed, error=StoredJobError(job.error or {"message": "the job did not succeed"}))

    async def _current(self, job: JobRecord) -> JobRecord:
        current = await run_in_threadpool(self.jobs.get, job.id, project_id=job.project_id)
        if current is None:
            raise NotFound("job not found", detail=f"job_id: no job {job.id} in this project")
        return current

    async def wait_for_result(self, job: JobRecord, announced: Announcement, timeout: float) -> CallResponse:
        """Wait (inside `waiter.expect(job.id)`) until the job is final; its response or its error."""

        final: list[JobEnding] = []  # the announcement, or the read, that found the job done

        async def is_done() -> bool:
            ending = decode_ending(announced.message)
            if ending is None:
                current = await run_in_threadpool(self.jobs.get, job.id)
                if current is not None:
                    ending = JobEnding(current.status, current.result, current.error)
            if ending is not None and ending.status.is_final:
                final.append(ending)
                return True
            return False

        if not await self.waiter.wait(announced, is_done, timeout):
            raise CallTimedOut(
                f"the call did not finish within {timeout:g} s; it keeps running",
                detail={"job_id": job.id, "span_id": job.span_id},
            )
        return response_of(final[-1])


def response_of(job: JobRecord | JobEnding) -> CallResponse:
    if job.status is JobStatus.succeeded and job.result is not None:
        return CallResponse.model_validate(job.result)
    raise StoredJobError(job.error or {"message": f"the job ended as {job.status.value}"})
