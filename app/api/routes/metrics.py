"""Span metrics: `/spans/{span_id}/metrics[/{metric_id}]` (docs/opper-v2-api.md §6)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from app.api.deps import CurrentProject, Spans
from app.schemas.calls import ErrorBody
from app.schemas.paging import PageParams, Paginated
from app.schemas.spans import MetricCreate, MetricOut, MetricUpdate

router = APIRouter(tags=["span metrics"])

_ERRORS = {code: {"model": ErrorBody} for code in (400, 401, 404, 422)}
_CONFLICT = {409: {"model": ErrorBody, "description": "The span already has a metric with this dimension"}}


@router.post(
    "/spans/{span_id}/metrics",
    response_model=MetricOut,
    responses={**_ERRORS, **_CONFLICT},
    summary="Create a metric of a span",
)
def create_metric(span_id: str, body: MetricCreate, project: CurrentProject, spans: Spans) -> MetricOut:
    """One metric per dimension and span: a second one with the same dimension is a 409."""
    return spans.create_metric(project.id, span_id, body)


@router.get(
    "/spans/{span_id}/metrics",
    response_model=Paginated[MetricOut],
    responses=_ERRORS,
    summary="List a span's metrics",
)
def list_metrics(span_id: str, page: PageParams, project: CurrentProject, spans: Spans) -> dict:
    """Oldest first."""
    return spans.metric_page(project.id, span_id, page)


@router.get("/spans/{span_id}/metrics/{metric_id}", response_model=MetricOut, responses=_ERRORS, summary="Get a metric")
def get_metric(span_id: str, metric_id: str, project: CurrentProject, spans: Spans) -> MetricOut:
    return spans.get_metric(project.id, span_id, metric_id)


@router.patch(
    "/spans/{span_id}/metrics/{metric_id}",
    response_model=MetricOut,
    responses={**_ERRORS, **_CONFLICT},
    summary="Update a metric",
)
def update_metric(span_id: str, metric_id: str, body: MetricUpdate, project: CurrentProject, spans: Spans) -> MetricOut:
    return spans.update_metric(project.id, span_id, metric_id, body)


@router.delete(
    "/spans/{span_id}/metrics/{metric_id}",
    status_code=204,
    response_class=Response,
    responses=_ERRORS,
    summary="Delete a metric",
)
def delete_metric(span_id: str, metric_id: str, project: CurrentProject, spans: Spans) -> Response:
    spans.delete_metric(project.id, span_id, metric_id)
    return Response(status_code=204)
