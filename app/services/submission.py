"""A call made into a queued job: resolve its task (models expanded, schemas and configuration checked),
record its function and its job row, and enqueue it. `/v2/call`, jobs, streams and batches all submit
through `CallSubmitter`; what happens after the job is queued is theirs (app/services/calls.py waits)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from functools import partial

import redis.asyncio as aioredis
from starlette.concurrency import run_in_threadpool

from app.config import Settings
from app.engine.structured import check_schema
from app.engine.task import TaskSpec, task_to_dict
from app.errors import BadRequest, NotFound, ServiceUnavailable
from app.observability import tracing
from app.providers.base import ModelResolver
from app.queue import enqueue_job
from app.schemas.calls import CallRequest
from app.schemas.functions import FunctionCallRequest
from app.services.catalog_cache import CatalogCache
from app.services.idempotency import Accepted
from app.services.model_catalog import ModelCatalog
from app.services.task_builder import build_task, function_call_request, function_definition, model_names
from app.store import keys
from app.store.async_jobs import AsyncJobWriter
from app.store.functions import FunctionRepository, matches_revision
from app.store.idempotency import KeyBinding
from app.store.job_records import DeliveryOptions
from app.store.jobs import JobRecord, JobRepository, NewJob
from app.store.projects import ProjectRef
from app.store.spans import SpanRepository
from app.store.tables import JobStatus


@dataclass(frozen=True)
class ResolvedTask:
    """A call's task, resolved and checked but not written as a job (a batch's template): no input."""

    task: TaskSpec
    function_id: str
    revision_id: str | None


def needs_enqueue(accepted: Accepted) -> bool:
    """A new job is enqueued; so is a replayed one still queued, as its first request may have died
    between writing it and enqueueing it (a second message for a job already queued is a no-op: only
    one claim can take it)."""
    return not accepted.replayed or accepted.job.status is JobStatus.queued


@dataclass
class CallSubmitter:
    settings: Settings
    resolver: ModelResolver
    functions: FunctionRepository
    jobs: JobRepository
    spans: SpanRepository
    redis: aioredis.Redis  # the broker: jobs are enqueued from the event loop (app/queue.py)
    catalog: ModelCatalog | None = None  # expands aliases and custom model names; None: names as given
    catalog_cache: CatalogCache | None = None  # the catalog as last read, for the usual call
    job_writer: AsyncJobWriter | None = None  # Postgres: the usual call's job row written from the event loop

    async def _build_task(self, project: ProjectRef, request: CallRequest) -> TaskSpec:
        """The resolved task; run in a thread because expanding model names reads the database."""
        expand = self.catalog.expander(project.id, model_names(request.model)) if self.catalog is not None else None
        return await run_in_threadpool(
            partial(
                build_task, request, default_model=self.settings.default_model, resolver=self.resolver, expand=expand
            )
        )

    async def submit(
        self,
        project: ProjectRef,
        request: CallRequest,
        *,
        durable: bool = True,
        delivery: DeliveryOptions = DeliveryOptions(),
        binding: KeyBinding | None = None,
    ) -> JobRecord:
        """Validate and record a call as a queued job (`enqueue` sends it), with how it is delivered and
        the Idempotency-Key that names it, in one transaction. BadRequest before any write.

        `durable=False` only for a caller that answers with the job's result or an error, never with
        the job itself before `jobs.make_durable(job.id)` (JobRepository.create says why)."""
        trace: tuple[str | None, str] | None = None
        if self.catalog_cache is not None and self.catalog is not None:
            job, trace = await self._submit_cached(project, request, durable, delivery, binding)
            if job is not None:
                return job
        task = await self._build_task(project, request)
        # The trace the cached way chose, if it got that far: the request's span may have started in it.
        parent, trace_id = trace or await self._trace_for(project, request)
        ref = await run_in_threadpool(
            self.functions.ensure_for_call, project.id, request.name, function_definition(request)
        )
        return await self._record(
            project,
            task,
            parent,
            trace_id,
            ref.function_id,
            ref.revision_id,
            durable=durable,
            delivery=delivery,
            binding=binding,
        )

    async def _submit_cached(
        self,
        project: ProjectRef,
        request: CallRequest,
        durable: bool,
        delivery: DeliveryOptions,
        binding: KeyBinding | None,
    ) -> tuple[JobRecord | None, tuple[str | None, str] | None]:
        """The usual call (a known function's current definition) resolved from the process's catalog
        copy, on the event loop, its job written only if that copy is current; and its (parent span,
        trace), if chosen. No job: resolve it the long way (a new function or revision, or a catalog
        that keeps changing under us), in the same trace."""
        definition = function_definition(request).to_json()
        trace: tuple[str | None, str] | None = None
        for _ in range(2):
            snapshot = await self.catalog_cache.snapshot(project.id, request.name)
            if snapshot is None:
                return None, trace
            try:
                task = build_task(
                    request,
                    default_model=self.settings.default_model,
                    resolver=self.resolver,
                    expand=self.catalog.snapshot_expander(project.id, snapshot),
                )
            except BadRequest:
                return None, trace  # it may be the copy that is stale (a model added since): the long way decides
            current = snapshot.functions.get(request.name)
            if current is None or not matches_revision(current.definition, current.digest, definition):
                # The long way records the new function or revision, which moves the catalog on.
                self.catalog_cache.invalidate(project.id)
                return None, trace
            trace = trace or await self._trace_for(project, request)
            job = await self._record(
                project,
                task,
                *trace,
                current.function_id,
                current.revision_id,
                catalog_version=snapshot.version,
                durable=durable,
                delivery=delivery,
                binding=binding,
            )
            if job is not None:
                return job, trace
            self.catalog_cache.invalidate(project.id)  # changed meanwhile: once more from a fresh copy
        return None, trace

    async def submit_function_call(
        self,
        project: ProjectRef,
        function_id: str,
        revision_id: str | None,
        body: FunctionCallRequest,
        *,
        delivery: DeliveryOptions = DeliveryOptions(),
        binding: KeyBinding | None = None,
    ) -> JobRecord:
        """Validate and record (not enqueue) a call of a stored function, at `revision_id` or its latest.

        The stored instructions, schemas, model and configuration apply; `body` brings the input,
        examples, tags and parent span. Raises NotFound / BadRequest before anything is written."""
        function = await run_in_threadpool(self.functions.at_revision, project.id, function_id, revision_id)
        if function is None:
            if revision_id is not None and await run_in_threadpool(self.functions.get, project.id, function_id):
                raise NotFound("revision not found", detail=f"revision_id: no revision {revision_id} of this function")
            raise NotFound("function not found", detail=f"function_id: no function {function_id} in this project")
        request = function_call_request(function, body)
        task = await self._build_task(project, request)
        parent, trace_id = await self._trace_for(project, request)
        return await self._record(
            project, task, parent, trace_id, function.id, function.revision_id, delivery=delivery, binding=binding
        )

    async def resolve_call(self, project: ProjectRef, request: CallRequest) -> ResolvedTask:
        """What `submit` resolves (models expanded, schemas and configuration checked, the function
        recorded) for calls yet to be given their inputs; `request.input` is ignored."""
        task = await self._template(project, request)
        ref = await run_in_threadpool(
            self.functions.ensure_for_call, project.id, request.name, function_definition(request)
        )
        return ResolvedTask(task, ref.function_id, ref.revision_id)

    async def resolve_function_call(
        self, project: ProjectRef, function_id: str, revision_id: str | None, body: FunctionCallRequest
    ) -> ResolvedTask:
        """The same for a stored function at `revision_id` (or its latest); NotFound as `submit_function_call`."""
        function = await run_in_threadpool(self.functions.at_revision, project.id, function_id, revision_id)
        if function is None:
            if revision_id is not None and await run_in_threadpool(self.functions.get, project.id, function_id):
                raise NotFound("revision not found", detail=f"revision_id: no revision {revision_id} of this function")
            raise NotFound("function not found", detail=f"function_id: no function {function_id} in this project")
        task = await self._template(project, function_call_request(function, body))
        return ResolvedTask(task, function.id, function.revision_id)

    async def _template(self, project: ProjectRef, request: CallRequest) -> TaskSpec:
        # Built without the input schema (there is no input to check yet), which is checked on its own.
        probe = request.model_copy(update={"input": None, "input_schema": None})
        task = await self._build_task(project, probe)
        if request.input_schema is not None:
            check_schema(request.input_schema, "input_schema")
        return replace(task, input=None, input_schema=request.input_schema)

    async def _record(
        self,
        project: ProjectRef,
        task: TaskSpec,
        parent: str | None,
        trace_id: str,
        function_id: str,
        revision_id: str | None,
        catalog_version: int | None = None,
        durable: bool = True,
        delivery: DeliveryOptions = DeliveryOptions(),
        binding: KeyBinding | None = None,
    ) -> JobRecord | None:
        """The queued job; None only with `catalog_version`, when the project's catalog moved past it."""
        new = NewJob(
            project_id=project.id,
            task=task_to_dict(task),
            trace_id=trace_id,
            function_id=function_id,
            revision_id=revision_id,
            parent_span_id=parent,
            delivery=delivery,
            idempotency=binding,
            trace_context=tracing.trace_context(),  # every run of the job is traced under this request
        )
        if self.job_writer is not None and catalog_version is not None and binding is None:
            return await self.job_writer.create(new, catalog_version=catalog_version, durable=durable)
        return await run_in_threadpool(partial(self.jobs.create, new, catalog_version=catalog_version, durable=durable))

    async def _trace_for(self, project: ProjectRef, request: CallRequest) -> tuple[str | None, str]:
        """(parent span id, trace id): the parent's trace, or a new trace for a root call."""
        parent = str(request.parent_span_id) if request.parent_span_id else None
        if parent is None:
            trace_id = str(uuid.uuid4())
        else:
            trace_id = await run_in_threadpool(self.spans.trace_of, project.id, parent)
            if trace_id is None:
                raise BadRequest("no span with this id in this project", field_name="parent_span_id")
        tracing.join_stored_trace(trace_id, parent)  # the exported spans' trace (app/observability/api_spans.py)
        return parent, trace_id

    async def enqueue(self, job: JobRecord) -> None:
        try:
            await enqueue_job(self.redis, job.id, counts_key=keys.METRICS_COUNTS)  # its trace is in its row
        except Exception as exc:
            await run_in_threadpool(self.jobs.discard_queued, job.id)
            raise ServiceUnavailable(
                "the job queue is unreachable; nothing was run, retry the request",
                detail=f"enqueue failed: {type(exc).__name__}",
            ) from exc
