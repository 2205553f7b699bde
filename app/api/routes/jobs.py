"""`/v2/jobs`: submit a call as a job (202 at once), poll or long-poll it, list, cancel, and its webhooks."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated

from fastapi import APIRouter, Header, Query
from fastapi.responses import JSONResponse

from app.api.deps import CurrentProject, Jobs
from app.schemas.calls import ErrorBody
from app.schemas.jobs import DeliveryOut, JobOut, JobRequest
from app.schemas.paging import PageParams, Paginated, paginated
from app.schemas.spans import UTCTimestamp
from app.services.jobs import parse_job_filters
from app.store.jobs import JobRecord

router = APIRouter(tags=["jobs"])

REPLAYED_HEADER = "Idempotent-Replayed"
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="Retry-safe submission: the same key and body give the original job back",
    ),
]
_ERRORS = {code: {"model": ErrorBody} for code in (400, 401, 404, 409, 422)}


def job_accepted(job: JobRecord, *, replayed: bool, secret: str | None = None, prefer_applied: bool = False):  # noqa: ANN201
    """202 with the job, its `Location`, and `Idempotent-Replayed` when it is an earlier request's job."""
    headers = {"Location": f"/v2/jobs/{job.id}"}
    if replayed:
        headers[REPLAYED_HEADER] = "true"
    if prefer_applied:
        headers["Preference-Applied"] = "respond-async"
    body = JobOut.of(job, show_secret=secret).model_dump(mode="json", by_alias=True)
    return JSONResponse(body, status_code=202, headers=headers)


@router.post(
    "/jobs",
    status_code=202,
    response_model=JobOut,
    responses=_ERRORS,
    summary="Submit a job",
)
async def submit_job(
    body: JobRequest, project: CurrentProject, job_service: Jobs, idempotency_key: IdempotencyKey = None
) -> JSONResponse:
    """Runs a `/v2/call` body (or `function_id` + `input`) as a job and answers at once with it.
    Poll `GET /v2/jobs/{id}` (with `?wait=` to long-poll) or give a `webhook` to be called when it ends."""
    submitted = await job_service.submit(project, body, idempotency_key=idempotency_key)
    return job_accepted(submitted.job, replayed=submitted.replayed, secret=submitted.generated_secret)


@router.get("/jobs", response_model=Paginated[JobOut], responses=_ERRORS, summary="List jobs")
async def list_jobs(
    project: CurrentProject,
    job_service: Jobs,
    page: PageParams,
    status: Annotated[list[str], Query(description="queued, running, succeeded, failed, cancelled")] = [],  # noqa: B006
    name: Annotated[str | None, Query(description="The function's name")] = None,
    tag: Annotated[list[str], Query(description="key:value; repeat to require several")] = [],  # noqa: B006
    created_after: Annotated[UTCTimestamp | None, Query(description="Inclusive")] = None,
    created_before: Annotated[UTCTimestamp | None, Query(description="Exclusive")] = None,
    batch_id: Annotated[str | None, Query(description="Only this batch's items")] = None,
    include_batch_items: Annotated[bool, Query(description="List batch items too (left out by default)")] = False,
) -> dict:
    """Newest first. Batch items are left out unless `batch_id` or `include_batch_items=true` asks for them."""
    filters = replace(
        parse_job_filters(status, name, tag, created_after, created_before),
        batch_id=batch_id,
        include_batch_items=include_batch_items,
    )
    jobs, total = await job_service.find(project, filters, page)
    return paginated([JobOut.of(job) for job in jobs], total)


@router.get("/jobs/{job_id}", response_model=JobOut, responses=_ERRORS, summary="Get a job")
async def get_job(
    job_id: str,
    project: CurrentProject,
    job_service: Jobs,
    wait: Annotated[
        float,
        Query(description="Long-poll: answer as soon as the job ends, within this many seconds", allow_inf_nan=False),
    ] = 0,
) -> JobOut:
    """Its status, timestamps, attempts, input, and once ended its `result` (what `/v2/call` answers) or `error`."""
    return JobOut.of(await job_service.get(project, job_id, wait=wait), with_input=True)


@router.post("/jobs/{job_id}/cancel", response_model=JobOut, responses=_ERRORS, summary="Cancel a job")
async def cancel_job(job_id: str, project: CurrentProject, job_service: Jobs) -> JobOut:
    """A queued job is cancelled at once; a running one too, and its provider call is abandoned.
    409 when the job already ended."""
    return JobOut.of(await job_service.cancel(project, job_id))


@router.get(
    "/jobs/{job_id}/deliveries",
    response_model=Paginated[DeliveryOut],
    responses=_ERRORS,
    summary="List a job's webhook deliveries",
)
async def list_deliveries(job_id: str, project: CurrentProject, job_service: Jobs, page: PageParams) -> dict:
    """Each delivery with every attempt: when, the receiver's status code or the error, the next retry."""
    deliveries, total = await job_service.deliveries_of(project, job_id, page)
    return paginated([DeliveryOut.of(d) for d in deliveries], total)


@router.post(
    "/jobs/{job_id}/deliveries/{delivery_id}/redeliver",
    status_code=202,
    response_model=DeliveryOut,
    responses=_ERRORS,
    summary="Send a webhook delivery again",
)
async def redeliver(job_id: str, delivery_id: str, project: CurrentProject, job_service: Jobs) -> DeliveryOut:
    """The same message (same `webhook-id` and body), sent now, with a fresh retry schedule."""
    return DeliveryOut.of(await job_service.redeliver(project, job_id, delivery_id))
