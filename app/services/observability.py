"""Spans and span metrics for the API: id and trace resolution, checks, 404s for other projects' ids."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from app.errors import BadRequest, Conflict, NotFound
from app.schemas.paging import Page, paginated
from app.schemas.spans import (
    FeedbackInfo,
    MetricCreate,
    MetricOut,
    MetricUpdate,
    SpanCreate,
    SpanOut,
    SpanUpdate,
    SpanWithFeedback,
)
from app.store.db import Database
from app.store.feedback import latest_feedback
from app.store.metrics import MetricPatch, MetricRepository, NewMetric
from app.store.spans import NewSpan, SpanPatch, SpanRepository
from app.store.tables import new_id, utcnow


def canonical_id(value: str) -> str | None:
    """Ids are stored in canonical UUID form; None for a string that is not a UUID (so: no such row)."""
    try:
        return str(uuid.UUID(value))
    except (ValueError, AttributeError, TypeError):
        return None


def _check_times(start: datetime | None, end: datetime | None) -> None:
    if start is not None and end is not None and end < start:
        raise BadRequest(f"{end.isoformat()} is before start_time {start.isoformat()}", field_name="end_time")


def _span_not_found(span_id: str) -> NotFound:
    return NotFound("span not found", detail=f"span_id: no span {span_id} in this project")


def _no_nulls(values: dict, *names: str) -> None:
    for name in names:
        if name in values and values[name] is None:
            raise BadRequest("cannot be null", field_name=name)


@dataclass
class SpanService:
    db: Database
    spans: SpanRepository
    metrics: MetricRepository

    # --- spans ----------------------------------------------------------------------------------

    def create(self, project_id: str, body: SpanCreate) -> SpanOut:
        span_id = str(body.id) if body.id else new_id()
        trace_id = str(body.trace_id) if body.trace_id else None
        parent_id = str(body.parent_id) if body.parent_id else None
        if parent_id is not None:
            if parent_id == span_id:
                raise BadRequest("a span cannot be its own parent", field_name="parent_id")
            parent_trace = self.spans.trace_of(project_id, parent_id)
            if parent_trace is None:
                raise BadRequest(f"no span {parent_id} in this project", field_name="parent_id")
            if trace_id is not None and trace_id != parent_trace:
                raise BadRequest(f"differs from the parent span's trace {parent_trace}", field_name="trace_id")
            trace_id = parent_trace
        start = body.start_time or utcnow()
        _check_times(start, body.end_time)
        span = self.spans.insert(
            NewSpan(
                id=span_id,
                project_id=project_id,
                trace_id=trace_id or new_id(),
                name=body.name,
                parent_id=parent_id,
                type=body.type,
                start_time=start,
                end_time=body.end_time,
                input=body.input,
                output=body.output,
                error=body.error,
                meta=body.meta,
                score=body.score,
            )
        )
        if span is None:
            raise Conflict("a span with this id already exists", detail=f"id: span {span_id} already exists")
        return SpanOut.model_validate(span)

    def get(self, project_id: str, span_id: str) -> SpanWithFeedback:
        canonical = canonical_id(span_id)
        span = self.spans.get(project_id, canonical) if canonical else None
        if span is None:
            raise _span_not_found(span_id)
        return SpanWithFeedback.model_validate(span).model_copy(
            update={"feedback": self._feedback(project_id, canonical)}
        )

    def _feedback(self, project_id: str, span_id: str) -> FeedbackInfo | None:
        """The latest feedback on the span, kept by the feedback area (app/store/feedback.py)."""
        feedback = latest_feedback(self.db, project_id, span_id)
        return FeedbackInfo(score=feedback.score, comment=feedback.comment) if feedback else None

    def update(self, project_id: str, span_id: str, body: SpanUpdate) -> SpanOut:
        values = body.model_dump(exclude_unset=True)
        _no_nulls(values, "name")
        canonical = canonical_id(span_id)
        current = self.spans.get(project_id, canonical) if canonical else None
        if current is None:
            raise _span_not_found(span_id)
        _check_times(values.get("start_time", current.start_time), values.get("end_time", current.end_time))
        span = self.spans.update(project_id, canonical, SpanPatch(**values))
        if span is None:  # deleted in between
            raise _span_not_found(span_id)
        return SpanOut.model_validate(span)

    def delete(self, project_id: str, span_id: str) -> None:
        canonical = canonical_id(span_id)
        if canonical is None or not self.spans.delete(project_id, canonical):
            raise _span_not_found(span_id)

    # --- metrics --------------------------------------------------------------------------------

    def _span_id(self, span_id: str) -> str:
        canonical = canonical_id(span_id)
        if canonical is None:
            raise _span_not_found(span_id)
        return canonical

    def create_metric(self, project_id: str, span_id: str, body: MetricCreate) -> MetricOut:
        metric = self.metrics.create(
            NewMetric(project_id, self._span_id(span_id), body.dimension, body.value, body.comment)
        )
        return MetricOut.model_validate(metric)

    def metric_page(self, project_id: str, span_id: str, page: Page) -> dict:
        metrics, total = self.metrics.page(project_id, self._span_id(span_id), offset=page.offset, limit=page.limit)
        return paginated([MetricOut.model_validate(m) for m in metrics], total)

    def get_metric(self, project_id: str, span_id: str, metric_id: str) -> MetricOut:
        metric = self.metrics.get(project_id, self._span_id(span_id), metric_id)
        if metric is None:
            raise _metric_not_found(metric_id)
        return MetricOut.model_validate(metric)

    def update_metric(self, project_id: str, span_id: str, metric_id: str, body: MetricUpdate) -> MetricOut:
        values = body.model_dump(exclude_unset=True)
        _no_nulls(values, "dimension", "value")
        metric = self.metrics.update(project_id, self._span_id(span_id), metric_id, MetricPatch(**values))
        if metric is None:
            raise _metric_not_found(metric_id)
        return MetricOut.model_validate(metric)

    def delete_metric(self, project_id: str, span_id: str, metric_id: str) -> None:
        if not self.metrics.delete(project_id, self._span_id(span_id), metric_id):
            raise _metric_not_found(metric_id)


def _metric_not_found(metric_id: str) -> NotFound:
    return NotFound("metric not found", detail=f"metric_id: no metric {metric_id} on this span in this project")
