"""Running a batch through the providers' batch APIs (`execution: "provider"`), half price, same results.

One worker at a time (by a Redis lock, see workers/tasks/provider_batches.py) runs rounds of
`ProviderBatchDriver.round`:

1. split: the queued items of a provider-execution batch that no provider batch holds are cut into
   provider batches of at most `max_requests` requests / `max_bytes` bytes, and each is recorded (a
   row and its items) before anything is sent: the intent;
2. create: an intent is first looked for at the provider (by its metadata at OpenAI, by listing at
   Anthropic: a worker may have died after creating it and before recording its id); only when none
   is found is it uploaded and created. Either way its id is then recorded. So the same items never
   make two provider batches;
3. poll, every `poll_seconds`, until the provider says it ended;
4. collect: each answer is the first attempt of its item's call, which carries on exactly as on the
   queue (app/engine/batch_answers.py: validation, re-ask, next model), and the item ends with its
   spans and cost by the conditional UPDATE of `JobRepository.end_queued`: an answer read twice
   (the collecting worker died) ends its item once and bills it once. Items no line answered
   (expired, or the provider batch was cancelled elsewhere) run from their first attempt.

A batch that is cancelling has its provider batches cancelled too; its items were cancelled at once
by the API (they are `queued` while a provider batch holds them), so none is billed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any, TypeVar

from app.engine.batch_answers import complete_from_batch, first_request
from app.engine.deps import EngineDeps
from app.engine.task import TaskSpec, task_from_dict
from app.errors import ConveyorError, TaskFailed
from app.observability import tracing
from app.providers.batch_api import BatchIntent, BatchLine, LineResult, ProviderBatchAPI, RemoteBatch, batch_api_of
from app.services.batch_completion import BatchCompletion
from app.services.batch_items import TemplateCache
from app.services.call_spans import spans_for_failure, spans_for_success
from app.services.fewshot import EmptyDatasetMemo, select_examples
from app.store.batch_records import BatchTemplate
from app.store.batches import BatchRepository
from app.store.db import Database
from app.store.job_records import Finish, JobRecord
from app.store.jobs import JobRepository
from app.store.provider_batches import ProviderBatchRecord, ProviderBatchRepository
from app.store.tables import JobStatus, utcnow
from app.store.tables_batches import BatchStatus
from app.store.tables_provider_batches import ProviderBatchState

log = logging.getLogger("conveyor.provider_batches")
T = TypeVar("T")

INTENT_CLOCK_SLACK = 120.0  # seconds
ENDINGS_PER_WRITE = 200


@dataclass(frozen=True)
class ProviderBatchPolicy:
    poll_seconds: float = 60.0
    max_requests: int = 0  # 0: the provider's own limit
    max_bytes: int = 0
    concurrency: int = 64  # item calls carried on at once while collecting (re-asks, fallbacks)

    def limits(self, api: ProviderBatchAPI) -> tuple[int, int]:
        requests = min(self.max_requests or api.max_requests, api.max_requests)
        return requests, min(self.max_bytes or api.max_bytes, api.max_bytes)


class ProviderBatchDriver:
    def __init__(
        self,
        db: Database,
        deps: EngineDeps,
        completion: BatchCompletion,
        policy: ProviderBatchPolicy,
        run_blocking: Callable[..., Any],
        on_ended: Callable[[Sequence[tuple[JobRecord, Finish]]], None] | None = None,
    ) -> None:
        """`on_ended`: told the items this driver ended (the worker's metrics counts)."""
        self.db = db
        self.on_ended = on_ended
        self.deps = deps
        self.store = ProviderBatchRepository(db)
        self.batches = BatchRepository(db)
        self.jobs = JobRepository(db)
        self.completion = completion
        self.policy = policy
        self._run_blocking = run_blocking  # (function, *args) -> awaitable: database calls off the loop
        self._polled: dict[str, float] = {}
        self._templates = TemplateCache(self.batches)
        self._empty = EmptyDatasetMemo()

    async def _b(self, function: Callable[..., T], *args: Any) -> T:
        return await self._run_blocking(function, *args)

    async def round(self) -> None:
        """Split new work into provider batches, then move each open one a step."""
        for batch_id in await self._b(self.store.batches_to_split):
            try:
                await self._split(batch_id)
            except Exception:
                log.exception("could not split a batch into provider batches", extra={"batch_id": batch_id})
        for pbatch in await self._b(self.store.open):
            try:
                await self._advance(pbatch)
            except Exception:  # the provider or the database may be briefly away: next round
                log.exception("provider batch step failed", extra={"provider_batch_id": pbatch.id})

    # --- split -------------------------------------------------------------------------------------

    async def _split(self, batch_id: str) -> None:
        template = (await self._template(batch_id)).task
        model = template["models"][0]["name"]
        api = self._api(model)
        max_requests, max_bytes = self.policy.limits(api)
        while items := await self._b(lambda: self.store.unheld_items(batch_id, limit=max_requests)):
            lines = await self._lines(template, items)
            taken, size = 0, 0
            for line in lines:
                size += api.line_size(line)
                if taken and size > max_bytes:
                    break
                taken += 1
            chosen = [item.id for item in items[:taken]]
            pbatch_id = await self._b(self.store.record_intent, batch_id, model, chosen)
            log.info("provider batch planned", extra={"provider_batch_id": pbatch_id, "items": taken})

    # --- create, poll, cancel ----------------------------------------------------------------------

    async def _advance(self, pbatch: ProviderBatchRecord) -> None:
        api = self._api(pbatch.model)
        if pbatch.batch_status is not BatchStatus.running:
            await self._cancel(pbatch, api)
        elif pbatch.state is ProviderBatchState.preparing:
            await self._create(pbatch, api)
        elif time.monotonic() - self._polled.get(pbatch.id, 0.0) >= self.policy.poll_seconds:
            self._polled[pbatch.id] = time.monotonic()
            remote = await api.get(pbatch.external_id or "")
            if remote.ended:
                await self._collect(pbatch, api, remote)
            elif remote.state != pbatch.external_state:
                await self._b(self.store.seen, pbatch.id, remote.state)

    async def _create(self, pbatch: ProviderBatchRecord, api: ProviderBatchAPI) -> None:
        intent = await self._intent(pbatch)
        remote = await api.find(intent)  # created before a crash: adopt it
        if remote is None:
            items = await self._b(self.store.queued_items, pbatch.id)
            if not items:  # all cancelled meanwhile
                await self._b(self.store.close, pbatch.id, ProviderBatchState.cancelled)
                return
            lines = await self._lines((await self._template(pbatch.batch_id)).task, items)
            remote = await api.submit(lines, intent)
        else:
            log.warning("adopted a provider batch created before a crash", extra={"provider_batch_id": pbatch.id})
        await self._b(self.store.submitted, pbatch.id, remote.id, remote.state)
        self._polled[pbatch.id] = time.monotonic()
        log.info("provider batch created", extra={"provider_batch_id": pbatch.id, "external_id": remote.id})

    async def _cancel(self, pbatch: ProviderBatchRecord, api: ProviderBatchAPI) -> None:
        """The batch is cancelling (or ended): stop its provider batch; its items were cancelled by the API."""
        remote: RemoteBatch | None = None
        if pbatch.external_id is not None:
            remote = await api.get(pbatch.external_id)
        elif pbatch.state is ProviderBatchState.preparing:
            remote = await api.find(await self._intent(pbatch))
        if remote is not None and not remote.ended:
            remote = await api.cancel(remote.id)
        await self._b(self.store.close, pbatch.id, ProviderBatchState.cancelled, remote.state if remote else None)
        await self._b(self.completion.end_if_done, pbatch.batch_id)

    # --- collect -----------------------------------------------------------------------------------

    async def _collect(self, pbatch: ProviderBatchRecord, api: ProviderBatchAPI, remote: RemoteBatch) -> None:
        template = await self._template(pbatch.batch_id)
        waiting = {item.id: item for item in await self._b(self.store.queued_items, pbatch.id)}
        async for chunk in api.results(remote):
            answered = [(waiting.pop(line.custom_id), line) for line in chunk if line.custom_id in waiting]
            await self._end_items(template, answered)
        # No line for these: never run (expired, or cancelled at the provider). They run afresh.
        await self._end_items(template, [(item, LineResult(item.id)) for item in waiting.values()])
        await self._b(self.store.close, pbatch.id, ProviderBatchState.collected, remote.state)
        self._polled.pop(pbatch.id, None)
        await self._b(self.completion.end_if_done, pbatch.batch_id)
        log.info("provider batch collected", extra={"provider_batch_id": pbatch.id, "state": remote.state})

    async def _end_items(self, template: BatchTemplate, answered: Sequence[tuple[JobRecord, LineResult]]) -> None:
        gate = asyncio.Semaphore(self.policy.concurrency)

        async def one(item: JobRecord, line: LineResult) -> Finish:
            job = replace(item, task={**template.task, **item.task}, trace_context=template.trace_context)
            async with gate:
                # In a span of the item's trace (linked to the batch's request), with its attempts' spans.
                return await tracing.traced_batch_answer(job, self._carry_on(job, line))

        for start in range(0, len(answered), ENDINGS_PER_WRITE):
            part = answered[start : start + ENDINGS_PER_WRITE]
            finishes = await asyncio.gather(*(one(item, line) for item, line in part))
            written = await self._b(self.jobs.end_queued, list(finishes))  # counters move as results arrive
            if self.on_ended is not None:
                ended = zip(part, finishes, written, strict=True)
                self.on_ended([(item, finish) for (item, _), finish, ok in ended if ok is True])

    async def _carry_on(self, job: JobRecord, line: LineResult) -> Finish:
        """The item's call from its batch answer on, as the queue would run it; its final state."""
        task = task_from_dict(job.task)
        started = utcnow()
        answer = line.completion or line.error
        try:
            examples = await select_examples(self.db, job.project_id, job.function_id, task, empty=self._empty)
            result = await complete_from_batch(task, self.deps, answer, extra_examples=examples)
        except TaskFailed as exc:
            spans = spans_for_failure(job, exc.message, exc.records, started)
            return Finish(job.id, None, JobStatus.failed, error=_error_body(exc), spans=spans)
        except ConveyorError as exc:
            return Finish(job.id, None, JobStatus.failed, error=_error_body(exc))
        except Exception as exc:  # a bug: the item fails honestly, the others carry on
            log.exception("provider batch item crashed", extra={"job_id": job.id})
            message = f"internal error: {type(exc).__name__}"
            error = {"type": "InternalServerError", "message": message, "detail": message, "status_code": 500}
            return Finish(job.id, None, JobStatus.failed, error=error)
        return Finish(
            job.id, None, JobStatus.succeeded, result=result.as_opper(job.span_id), spans=spans_for_success(job, result)
        )

    # --- helpers -----------------------------------------------------------------------------------

    async def _intent(self, pbatch: ProviderBatchRecord) -> BatchIntent:
        # A little slack on the time: the provider's clock is not ours.
        since = pbatch.created_at - timedelta(seconds=INTENT_CLOCK_SLACK)
        taken = await self._b(self.store.external_ids_since, since)
        return BatchIntent(pbatch.id, since.timestamp(), pbatch.item_count, taken)

    def _api(self, model: str) -> ProviderBatchAPI:
        api = batch_api_of(self.deps.resolver.resolve(model))
        if api is None:
            raise RuntimeError(f"{model} has no batch API")
        return api

    async def _template(self, batch_id: str) -> BatchTemplate:
        template = await self._b(self._templates.get, batch_id)
        if template is None:
            raise RuntimeError(f"batch {batch_id} has no template")
        return template

    async def _lines(self, template: dict[str, Any], items: Sequence[JobRecord]) -> list[BatchLine]:
        lines = []
        for item in items:
            task: TaskSpec = task_from_dict({**template, **item.task})
            examples = await select_examples(self.db, item.project_id, item.function_id, task, empty=self._empty)
            first = first_request(task, self.deps.resolver, extra_examples=examples)
            lines.append(BatchLine(item.id, first.request))
        return lines


def _error_body(exc: ConveyorError) -> dict[str, Any]:
    return {"type": exc.error_type, "message": exc.message, "detail": exc.detail, "status_code": exc.status_code}
