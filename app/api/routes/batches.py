"""`/v2/batches`: submit many calls at once (JSON, or a JSONL upload), follow them, fetch results, cancel, retry."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse

from app.api.deps import Batches, CurrentProject
from app.errors import BadRequest
from app.schemas.batches import BatchCreate, BatchOut, BatchResultLine
from app.schemas.calls import ErrorBody
from app.schemas.jobs import DeliveryOut
from app.schemas.paging import PageParams, Paginated, paginated
from app.services.batch_upload import read_upload
from app.services.batches import SubmittedBatch
from app.store.tables import utcnow

router = APIRouter(tags=["batches"])

_BATCH_STATES = "validating, running, completed, cancelling, cancelled, failed"
_ERRORS = {code: {"model": ErrorBody} for code in (400, 401, 404, 409, 422)}
IdempotencyKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", description="Retry-safe submission: the same key and body give the batch back"),
]


class NDJSONResponse(StreamingResponse):
    media_type = "application/x-ndjson"


def _inline(schema: dict[str, Any]) -> dict[str, Any]:
    """A model's JSON schema with its `$defs` inlined (OpenAPI resolves `$ref`s from the document root)."""
    defs = schema.pop("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return walk(defs[ref.rsplit("/", 1)[-1]])
            return {k: walk(v) for k, v in node.items()}
        return [walk(v) for v in node] if isinstance(node, list) else node

    return walk(schema)


_SUBMIT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": _inline(BatchCreate.model_json_schema())},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["batch", "file"],
                    "properties": {
                        "batch": {"type": "string", "description": "The JSON body without `items`"},
                        "file": {"type": "string", "format": "binary", "description": "JSONL: one item per line"},
                    },
                }
            },
        },
    }
}


def _accepted(submitted: SubmittedBatch) -> JSONResponse:
    batch = submitted.batch
    headers = {"Location": f"/v2/batches/{batch.id}"}
    if submitted.replayed:
        headers["Idempotent-Replayed"] = "true"
    body = BatchOut.of(batch, now=utcnow(), show_secret=submitted.generated_secret)
    return JSONResponse(body.model_dump(mode="json", by_alias=True), status_code=202, headers=headers)


@router.post(
    "/batches",
    status_code=202,
    response_model=BatchOut,
    responses=_ERRORS,
    openapi_extra=_SUBMIT_BODY,
    summary="Submit a batch",
)
async def submit_batch(
    request: Request, project: CurrentProject, batch_service: Batches, idempotency_key: IdempotencyKey = None
) -> JSONResponse:
    """Many calls of one task: `application/json` with `items`, or `multipart/form-data` with a `batch`
    part (the same JSON without `items`) and a `file` part (JSONL, one `{custom_id, input, tags?}` per line).
    Every item is checked first; invalid ones are listed by line (`on_invalid`: reject the batch, or skip them)."""
    content_type = request.headers.get("content-type", "")
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind == "application/json":
        raw = await request.body()
        submitted = await batch_service.submit_json(project, raw, idempotency_key=idempotency_key)
    elif kind == "multipart/form-data":
        upload = await read_upload(request.stream(), content_type)
        submitted = await batch_service.submit_upload(project, upload, idempotency_key=idempotency_key)
    else:
        raise BadRequest("must be application/json or multipart/form-data", field_name="Content-Type")
    return _accepted(submitted)


@router.get("/batches", response_model=Paginated[BatchOut], responses=_ERRORS, summary="List batches")
async def list_batches(
    project: CurrentProject,
    batch_service: Batches,
    page: PageParams,
    status: Annotated[
        list[str], Query(description="validating, running, completed, cancelling, cancelled, failed")
    ] = [],  # noqa: B006
) -> dict:
    """Newest first."""
    batches, total = await batch_service.find(project, status, page)
    now = utcnow()
    return paginated([BatchOut.of(batch, now=now) for batch in batches], total)


@router.get("/batches/{batch_id}", response_model=BatchOut, responses=_ERRORS, summary="Get a batch")
async def get_batch(batch_id: str, project: CurrentProject, batch_service: Batches) -> BatchOut:
    """Its status, counts, usage and cost so far, and an estimate of the time left."""
    return BatchOut.of(await batch_service.get(project, batch_id), now=utcnow())


@router.get(
    "/batches/{batch_id}/results",
    response_class=NDJSONResponse,
    responses={200: {"model": BatchResultLine, "description": "NDJSON: one BatchResultLine per item"}, **_ERRORS},
    summary="Stream a batch's results",
)
async def batch_results(
    batch_id: str,
    project: CurrentProject,
    batch_service: Batches,
    status: Annotated[list[str], Query(description="Only items in these states (repeatable)")] = [],  # noqa: B006
) -> NDJSONResponse:
    """One line per item in submission order: `custom_id`, `status`, `job_id`, and `result` (what
    `/v2/call` answers) or `error`. Available while the batch runs."""
    return NDJSONResponse(await batch_service.results(project, batch_id, status))


@router.post("/batches/{batch_id}/cancel", response_model=BatchOut, responses=_ERRORS, summary="Cancel a batch")
async def cancel_batch(batch_id: str, project: CurrentProject, batch_service: Batches) -> BatchOut:
    """Every item not yet ended is cancelled at once and never billed: queued ones never run, running ones
    (waiting for rate-limit room, or with a call in flight) are abandoned; provider batches are cancelled
    at the provider. 409 once it ended."""
    return BatchOut.of(await batch_service.cancel(project, batch_id), now=utcnow())


@router.get(
    "/batches/{batch_id}/deliveries",
    response_model=Paginated[DeliveryOut],
    responses=_ERRORS,
    summary="List a batch's webhook deliveries",
)
async def list_batch_deliveries(
    batch_id: str, project: CurrentProject, batch_service: Batches, page: PageParams
) -> dict:
    """The batch's one webhook message (once it ended) with every attempt: when, the receiver's status
    code or the error, the next retry."""
    await batch_service.get(project, batch_id)
    deliveries, total = await batch_service.deliveries.list(project, batch_id, page)
    return paginated([DeliveryOut.of(d) for d in deliveries], total)


@router.post(
    "/batches/{batch_id}/deliveries/{delivery_id}/redeliver",
    status_code=202,
    response_model=DeliveryOut,
    responses=_ERRORS,
    summary="Send a batch's webhook delivery again",
)
async def redeliver_batch_webhook(
    batch_id: str, delivery_id: str, project: CurrentProject, batch_service: Batches
) -> DeliveryOut:
    """The same message (same `webhook-id` and body), sent now, with a fresh retry schedule."""
    await batch_service.get(project, batch_id)
    return DeliveryOut.of(await batch_service.deliveries.redeliver(project, batch_id, delivery_id))


@router.post(
    "/batches/{batch_id}/retry",
    status_code=202,
    response_model=BatchOut,
    responses=_ERRORS,
    summary="Retry a batch's failed items",
)
async def retry_batch(batch_id: str, project: CurrentProject, batch_service: Batches) -> JSONResponse:
    """A new batch of the failed items of this (ended) batch, with the same task."""
    return _accepted(await batch_service.retry(project, batch_id))
