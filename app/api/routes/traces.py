"""Traces: `GET /traces`, `GET /traces/{trace_id}` (docs/opper-v2-api.md §6)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from app.api.deps import CurrentProject, Traces
from app.schemas.calls import ErrorBody
from app.schemas.paging import PageParams, Paginated
from app.schemas.traces import Trace, TraceSummary

router = APIRouter(tags=["traces"])

_ERRORS = {code: {"model": ErrorBody} for code in (400, 401, 404, 422)}


@router.get("/traces", response_model=Paginated[TraceSummary], responses=_ERRORS, summary="List traces")
def list_traces(
    page: PageParams,
    project: CurrentProject,
    traces: Traces,
    name: Annotated[str | None, Query(description="Only traces whose root span has this name")] = None,
) -> dict:
    """Newest first. `status` is `error` when a call or user span of the trace failed (an attempt that
    a retry or fallback recovered from does not count); `total_tokens` sums the model attempts."""
    return traces.page(project.id, name, page)


@router.get("/traces/{trace_id}", response_model=Trace, responses=_ERRORS, summary="Get a trace with its spans")
def get_trace(trace_id: str, project: CurrentProject, traces: Traces) -> Trace:
    return traces.get(project.id, trace_id)
