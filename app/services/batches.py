"""Batches as the API sees them: submit (JSON or an upload), read, list, stream results, cancel, retry.

The task is resolved once per batch (the same steps as `/v2/call`, through CallService), then the
items are checked and written by BatchIntake. Nothing is sent to the broker here: the dispatcher in
the workers feeds the batch queue (workers/batch_dispatch.py).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import redis.asyncio as aioredis
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool

from app import json_values
from app.config import Settings
from app.engine.structured import canonical_json
from app.engine.task import task_to_dict
from app.errors import BadRequest, Conflict, NotFound
from app.metrics.counts import add_to
from app.metrics.jobs import cancelled_counts, submitted_counts
from app.observability import tracing
from app.queue import BATCH_QUEUE
from app.schemas.batches import BatchSpec
from app.schemas.calls import CallRequest
from app.schemas.functions import FunctionCallRequest
from app.schemas.paging import Page
from app.secrets import secret_box
from app.services.batch_completion import BatchCompletion
from app.services.batch_deliveries import BatchDeliveries
from app.services.batch_intake import BatchIntake, ItemChecker, jsonl_values, listed_values
from app.services.batch_items import BATCH_ABANDONED_ERROR, BATCH_CANCELLED_ERROR
from app.services.batch_routing import choose_execution
from app.services.batch_upload import UploadedBatch
from app.services.idempotency import IdempotencyGuard
from app.services.submission import CallSubmitter, ResolvedTask
from app.services.webhooks import check_webhook_url, parse_secrets, seal_secrets
from app.store import keys
from app.store.batch_records import BatchRecord, NewBatch, NewItem
from app.store.batches import BatchRepository
from app.store.idempotency import KeyBinding
from app.store.jobs import JobRecord, JobRepository
from app.store.projects import ProjectRef
from app.store.provider_batches import ProviderBatchRepository
from app.store.tables import JobStatus
from app.store.tables_batches import BatchStatus
from app.store.webhooks import WebhookDeliveryRepository

log = logging.getLogger("conveyor.batches")

ENDPOINT = "POST /v2/batches"
RESULTS_PAGE = 1000


@dataclass(frozen=True)
class SubmittedBatch:
    batch: BatchRecord
    replayed: bool
    generated_secret: str | None = None  # shown once, in the answer that created the batch


class SubmissionDigest(BaseModel):
    """What makes two submissions "the same" for Idempotency-Key: the batch and its items' digest."""

    batch: dict[str, Any]
    form: str
    items_sha256: str


def parse_statuses(values: list[str], enum: type, field_name: str) -> tuple:
    try:
        return tuple(enum(value) for value in values)
    except ValueError:
        raise BadRequest(f"must be one of {', '.join(s.value for s in enum)}", field_name=field_name) from None


def parse_spec(data: Any, where: str) -> BatchSpec:
    if not isinstance(data, dict):
        raise BadRequest("must be a JSON object", field_name=where)
    try:
        return BatchSpec.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        location = ".".join(str(part) for part in first["loc"])
        raise BadRequest(first["msg"], field_name=f"{where}.{location}" if location else where) from None


@dataclass
class BatchService:
    settings: Settings
    submitter: CallSubmitter
    batches: BatchRepository
    jobs: JobRepository
    guard: IdempotencyGuard
    completion: BatchCompletion
    redis: aioredis.Redis | None = None  # announces cancelled running items to their workers
    intake: BatchIntake = field(init=False)
    provider_batches: ProviderBatchRepository = field(init=False)
    deliveries: BatchDeliveries = field(init=False)

    def __post_init__(self) -> None:
        self.intake = BatchIntake(self.batches)
        self.provider_batches = ProviderBatchRepository(self.batches.db)
        self.deliveries = BatchDeliveries(WebhookDeliveryRepository(self.batches.db), self.completion.webhooks)

    # --- submit ------------------------------------------------------------------------------------

    async def submit_json(self, project: ProjectRef, raw: bytes, *, idempotency_key: str | None) -> SubmittedBatch:
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise BadRequest("the request body is not valid JSON", detail=f"body: {exc}") from None
        if not isinstance(body, dict):
            raise BadRequest("must be a JSON object", field_name="body")
        items = body.pop("items", None)
        if not isinstance(items, list):
            raise BadRequest("is required: a list of {custom_id, input} objects", field_name="items")
        spec = parse_spec(body, "body")
        digest = hashlib.sha256()
        for item in items:
            digest.update(canonical_json(item).encode())
        return await self._submit(project, spec, listed_values(items), "json", digest.hexdigest(), idempotency_key)

    async def submit_upload(
        self, project: ProjectRef, upload: UploadedBatch, *, idempotency_key: str | None
    ) -> SubmittedBatch:
        try:
            try:
                data = json_values.loads(upload.spec)
            except json_values.UnstorableValue as exc:
                raise BadRequest(exc.reason, field_name=f"batch.{exc.path}" if exc.path else "batch") from None
            except ValueError as exc:
                raise BadRequest(f"not valid JSON: {exc}", field_name="batch") from None
            spec = parse_spec(data, "batch")
            values = jsonl_values(upload.file)
            return await self._submit(project, spec, values, "jsonl", upload.file_sha256, idempotency_key)
        finally:
            upload.file.close()

    async def _submit(
        self, project: ProjectRef, spec: BatchSpec, values: Iterator, form: str, items_sha256: str, key: str | None
    ) -> SubmittedBatch:
        secrets: tuple[str, ...] = ()
        generated = None
        if spec.webhook is not None:  # 400s before anything is written
            secrets = parse_secrets(spec.webhook.secret)
            await check_webhook_url(spec.webhook.url, allow_private=self.settings.allow_private_webhooks)
            generated = secrets[0] if spec.webhook.secret is None else None
            secrets = seal_secrets(secrets, secret_box(self.settings.secret_key))

        async def create(_: KeyBinding | None) -> JobRecord:
            # A batch's key is bound by the guard once its items are written (its anchor item names it).
            resolved = await self._resolve(project, spec)
            template = {k: v for k, v in task_to_dict(resolved.task).items() if k not in ("input", "tags")}
            execution = choose_execution(spec.execution, spec.completion_window, resolved.task, self.submitter.resolver)
            new = NewBatch(
                project_id=project.id,
                task_template=template,
                function_id=resolved.function_id,
                revision_id=resolved.revision_id,
                webhook_url=spec.webhook.url if spec.webhook else None,
                meta=spec.metadata,
                completion_window=spec.completion_window,
                execution=execution,
                webhook_secrets=secrets,
                trace_context=tracing.trace_context(),  # its items' spans link to this request's
            )
            checker = ItemChecker(resolved.task.input_schema, dict(resolved.task.tags))
            result = await run_in_threadpool(
                lambda: self.intake.run(new, checker.checked(values), skip_invalid=spec.on_invalid == "skip")
            )
            tracing.note_request("conveyor.batch.id", result.batch_id)
            await self._announce_submitted(result.batch_id, result.accepted)
            return await run_in_threadpool(self.jobs.get, result.anchor_job_id)

        digest = SubmissionDigest(
            batch=spec.model_dump(mode="json", exclude_unset=True), form=form, items_sha256=items_sha256
        )
        accepted = await self.guard.accept(project, key, ENDPOINT, digest, create)
        batch = await self.get(project, accepted.job.batch_id or "")
        return SubmittedBatch(batch, accepted.replayed, None if accepted.replayed else generated)

    async def _announce_submitted(self, batch_id: str, items: int) -> None:
        """Tell the workers a batch is ready, so one dispatches it at once, and count its items as
        submitted to the batch queue: one round trip per batch, not per item."""
        if self.redis is None:
            return
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.publish(keys.BATCH_SUBMITTED_CHANNEL, batch_id)
                if items:
                    add_to(pipe, submitted_counts(BATCH_QUEUE, items))
                await pipe.execute()
        except Exception:  # the batch is written: the next regular round dispatches it; only its count is lost
            log.warning("could not announce a batch or count its items", extra={"items": items}, exc_info=True)

    async def _resolve(self, project: ProjectRef, spec: BatchSpec) -> ResolvedTask:
        if (spec.function_id is None) == (spec.function is None):
            raise BadRequest("give exactly one of function_id and function", field_name="function_id")
        if spec.function_id is not None:
            body = FunctionCallRequest(input=None)
            return await self.submitter.resolve_function_call(project, spec.function_id, spec.revision_id, body)
        if spec.revision_id is not None:
            raise BadRequest("is only meaningful with function_id", field_name="revision_id")
        request = CallRequest.model_validate(spec.function.model_dump(exclude_unset=True))
        try:
            return await self.submitter.resolve_call(project, request)
        except BadRequest as exc:  # name the field where the caller wrote it
            field = f"function.{exc.field_name}" if exc.field_name else "function"
            raise BadRequest(exc.message, field_name=field) from None

    # --- read --------------------------------------------------------------------------------------

    async def get(self, project: ProjectRef, batch_id: str) -> BatchRecord:
        batch = await run_in_threadpool(self.batches.get, batch_id, project_id=project.id)
        if batch is None:
            raise NotFound("batch not found", detail=f"batch_id: no batch {batch_id} in this project")
        return await self._with_provider_batches(batch)

    async def _with_provider_batches(self, batch: BatchRecord) -> BatchRecord:
        if batch.execution != "provider":
            return batch
        found = await run_in_threadpool(self.provider_batches.of_batch, batch.id)
        return replace(batch, provider_batches=tuple(found))

    async def find(self, project: ProjectRef, statuses: list[str], page: Page) -> tuple[list[BatchRecord], int]:
        wanted = parse_statuses(statuses, BatchStatus, "status")
        found, total = await run_in_threadpool(
            lambda: self.batches.find(project.id, wanted, offset=page.offset, limit=page.limit)
        )
        return [await self._with_provider_batches(batch) for batch in found], total

    async def results(self, project: ProjectRef, batch_id: str, statuses: list[str]) -> AsyncIterator[bytes]:
        """NDJSON lines of the items (in submission order), a page of rows at a time. 404 before any byte."""
        wanted = parse_statuses(statuses, JobStatus, "status")
        await self.get(project, batch_id)
        return self._result_lines(batch_id, wanted)

    async def _result_lines(self, batch_id: str, statuses: tuple) -> AsyncIterator[bytes]:
        after = 0
        while True:
            page = await run_in_threadpool(
                lambda after=after: self.batches.items(batch_id, statuses=statuses, after_seq=after, limit=RESULTS_PAGE)
            )
            if not page:
                return
            yield b"".join(json.dumps(_result_line(item), separators=(",", ":")).encode() + b"\n" for item in page)
            if len(page) < RESULTS_PAGE:
                return
            after = page[-1].seq

    # --- cancel and retry --------------------------------------------------------------------------

    async def cancel(self, project: ProjectRef, batch_id: str) -> BatchRecord:
        """Every item not yet ended is cancelled at once: queued ones never run, running ones (waiting for
        rate-limit room, or with a call in flight) are abandoned by their workers; none is billed.
        Provider batches are cancelled by the worker that runs them (app/services/provider_batches.py)."""
        batch = await self.get(project, batch_id)
        if batch.status in (BatchStatus.cancelling, BatchStatus.cancelled):
            return batch
        if batch.status is not BatchStatus.running:
            raise Conflict(
                f"the batch is {batch.status.value}",
                detail=f"batch_id: {batch_id} is {batch.status.value}; only a running batch can be cancelled",
            )
        queued = await run_in_threadpool(lambda: self.batches.request_cancel(batch.id, error=BATCH_CANCELLED_ERROR))
        running = await run_in_threadpool(lambda: self.batches.cancel_running(batch.id, error=BATCH_ABANDONED_ERROR))
        await self._announce_cancel(running, cancelled=queued + len(running))
        await run_in_threadpool(self.completion.end_if_done, batch.id)
        return await self.get(project, batch_id)

    async def _announce_cancel(self, job_ids: list[str], cancelled: int) -> None:
        """Tell the workers running these items to abandon them (as a job cancel does), and count the
        `cancelled` items in the metrics. Should Redis lose it, each worker finds out at its next lease
        renewal."""
        if not (job_ids or cancelled) or self.redis is None:
            return
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                add_to(pipe, cancelled_counts(cancelled))
                for job_id in job_ids:
                    pipe.publish(keys.job_cancel_channel(job_id), "cancel")
                await pipe.execute()
        except Exception:
            log.warning("could not announce cancelled batch items", extra={"count": len(job_ids)}, exc_info=True)

    async def retry(self, project: ProjectRef, batch_id: str) -> SubmittedBatch:
        """A new batch of this one's failed items, with the same task, webhook and metadata."""
        old = await self.get(project, batch_id)
        if not old.status.is_final:
            raise Conflict(
                f"the batch is still {old.status.value}",
                detail=f"batch_id: {batch_id} has not ended; retry its failed items once it has",
            )
        if old.totals.failed == 0:
            raise Conflict("the batch has no failed items", detail=f"batch_id: {batch_id} has no failed items to retry")
        new = NewBatch(
            project_id=project.id,
            task_template=old.task_template,
            function_id=old.function_id,
            revision_id=old.revision_id,
            webhook_url=old.webhook_url,
            meta=old.meta,
            completion_window=old.completion_window,
            execution=old.execution,
            webhook_secrets=old.webhook_secrets,
            trace_context=tracing.trace_context(),
        )
        result = await run_in_threadpool(lambda: self.intake.run(new, self._failed_items(old.id), skip_invalid=False))
        tracing.note_request("conveyor.batch.id", result.batch_id)
        return SubmittedBatch(await self.get(project, result.batch_id), replayed=False)

    def _failed_items(self, batch_id: str) -> Iterator[NewItem]:
        after = 0
        while page := self.batches.items(batch_id, statuses=[JobStatus.failed], after_seq=after, limit=RESULTS_PAGE):
            for item in page:
                yield NewItem(item.custom_id, item.task.get("input"), dict(item.task.get("tags") or {}))
            after = page[-1].seq


def _result_line(item: Any) -> dict[str, Any]:
    error = item.error
    return {
        "custom_id": item.custom_id,
        "status": item.status.value,
        "job_id": item.job_id,
        "result": item.result,
        "error": {k: error.get(k) for k in ("type", "message", "detail")} if error else None,
    }
