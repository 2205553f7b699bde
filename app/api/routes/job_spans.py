"""`GET /v2/spans?job_id=...`: the spans of up to 100 jobs in one request (model, usage, cost, timing of
each call and of every model attempt), so a job listing or a job's page needs no request per job."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from app.api.deps import CurrentProject, JobSpans
from app.errors import BadRequest
from app.schemas.calls import ErrorBody
from app.schemas.job_spans import JobSpanOut
from app.schemas.paging import Paginated, paginated
from app.services.observability import canonical_id

router = APIRouter(tags=["spans"])

MAX_JOBS = 100


@router.get(
    "/spans",
    response_model=Paginated[JobSpanOut],
    responses={code: {"model": ErrorBody} for code in (400, 401, 422)},
    summary="List the spans of jobs",
)
def list_job_spans(
    project: CurrentProject,
    job_spans: JobSpans,
    job_id: Annotated[list[str], Query(description=f"A job's id; repeat for up to {MAX_JOBS} jobs")] = [],  # noqa: B006
    type: Annotated[  # noqa: A002 - the span field's name
        Literal["call", "generation"] | None, Query(description="Only call spans, or only model attempts")
    ] = None,
) -> dict:
    """Each job's call span (its input, answer or error, the model that answered, usage, cost) and one
    `generation` span per model attempt, by job then start time. A job has none until a worker ran it;
    ids of other projects' jobs or unknown ids give nothing."""
    if not job_id:
        raise BadRequest("at least one job id is required", field_name="job_id")
    if len(job_id) > MAX_JOBS:
        raise BadRequest(f"at most {MAX_JOBS} job ids per request", field_name="job_id")
    ids = [c for c in (canonical_id(j) for j in job_id) if c is not None]
    spans = job_spans.of_jobs(project.id, ids, type) if ids else []
    return paginated([JobSpanOut.of(span) for span in spans], len(spans))
