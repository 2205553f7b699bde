"""Spans: `POST /spans`, `GET|PATCH|DELETE /spans/{span_id}` (docs/opper-v2-api.md §6)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from app.api.deps import CurrentProject, Spans
from app.schemas.calls import ErrorBody
from app.schemas.spans import SpanCreate, SpanOut, SpanUpdate, SpanWithFeedback

router = APIRouter(tags=["spans"])


_ERRORS = {code: {"model": ErrorBody} for code in (400, 401, 404, 422)}


@router.post(
    "/spans",
    response_model=SpanOut,
    responses={**_ERRORS, 409: {"model": ErrorBody, "description": "A span with this id already exists"}},
    summary="Create a span",
)
def create_span(body: SpanCreate, project: CurrentProject, spans: Spans) -> SpanOut:
    """`id` and `trace_id` may be chosen by the client. With `parent_id` (a span of this project) the
    span joins the parent's trace. Calls with `parent_span_id` set to this span's id are traced under it."""
    return spans.create(project.id, body)


@router.get("/spans/{span_id}", response_model=SpanWithFeedback, responses=_ERRORS, summary="Get a span")
def get_span(span_id: str, project: CurrentProject, spans: Spans) -> SpanWithFeedback:
    return spans.get(project.id, span_id)


@router.patch("/spans/{span_id}", response_model=SpanOut, responses=_ERRORS, summary="Update a span")
def update_span(span_id: str, body: SpanUpdate, project: CurrentProject, spans: Spans) -> SpanOut:
    """Fields left out stay as they are; `input` and `output` are strings here."""
    return spans.update(project.id, span_id, body)


@router.delete("/spans/{span_id}", status_code=204, response_class=Response, responses=_ERRORS, summary="Delete a span")
def delete_span(span_id: str, project: CurrentProject, spans: Spans) -> Response:
    """Its metrics go with it; its child spans move up to its parent."""
    spans.delete(project.id, span_id)
    return Response(status_code=204)
