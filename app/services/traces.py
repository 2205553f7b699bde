"""Traces for the API: summaries for the listing and the full span tree of one trace."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.errors import NotFound
from app.schemas.paging import Page, paginated
from app.schemas.traces import SpanData, SpanMetricData, SpanSchema, Trace, TraceSummary
from app.services.observability import canonical_id
from app.store.metrics import MetricRepository
from app.store.tables import Span
from app.store.tables_observability import SpanMetric
from app.store.traces import GENERATION, TraceRepository, TraceStats, root_of, stats_of


def as_text(value: Any) -> str | None:
    """The SDK types these fields `str`: strings go as they are, anything else JSON-encoded."""
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def duration_ms(start: datetime | None, end: datetime | None) -> int | None:
    if start is None or end is None:
        return None
    return int((end - start).total_seconds() * 1000)


def summary(stats: TraceStats, root: Span | None) -> TraceSummary:
    return TraceSummary(
        id=stats.trace_id,
        start_time=stats.start_time,
        end_time=stats.end_time,
        duration_ms=duration_ms(stats.start_time, stats.end_time),
        status="error" if stats.failed else "success",
        name=root.name if root else None,
        input=as_text(root.input) if root else None,
        output=as_text(root.output) if root else None,
        total_tokens=stats.total_tokens,
    )


def _call_of(span: Span, by_id: dict[str, Span]) -> Span | None:
    """The call span a span belongs to: itself, or the call a generation attempt was made for."""
    if span.type == GENERATION and span.parent_id in by_id:
        return by_id[span.parent_id]
    return span if span.function_id else None


def span_schema(span: Span, by_id: dict[str, Span], metrics: Sequence[SpanMetric]) -> SpanSchema:
    call = _call_of(span, by_id)
    call_meta = (call.meta or {}) if call else {}
    return SpanSchema(
        id=span.id,
        name=span.name,
        type=span.type,
        parent_id=span.parent_id,
        start_time=span.start_time,
        end_time=span.end_time,
        duration_ms=duration_ms(span.start_time, span.end_time),
        error=span.error,
        meta=span.meta,
        score=span.score,
        data=SpanData(
            input=as_text(span.input),
            output=as_text(span.output),
            total_tokens=span.total_tokens,
            model=span.model,
            instructions=call_meta.get("instructions"),
            function=call.name if call else None,
            tags=[f"{key}:{value}" for key, value in span.tags.items()] if span.tags else None,
            score=span.score,
        ),
        metrics=[
            SpanMetricData(id=m.id, dimension=m.dimension, value=m.value, created_at=m.created_at, comment=m.comment)
            for m in metrics
        ],
    )


@dataclass
class TraceService:
    traces: TraceRepository
    metrics: MetricRepository

    def page(self, project_id: str, name: str | None, page: Page) -> dict:
        heads, total = self.traces.page(project_id, name=name, offset=page.offset, limit=page.limit)
        return paginated([summary(head.stats, head.root) for head in heads], total)

    def get(self, project_id: str, trace_id: str) -> Trace:
        canonical = canonical_id(trace_id)
        spans = self.traces.spans(project_id, canonical) if canonical else []
        if not spans:
            raise NotFound("trace not found", detail=f"trace_id: no trace {trace_id} in this project")
        by_metric_span: dict[str, list[SpanMetric]] = {}
        for metric in self.metrics.for_trace(project_id, canonical):
            by_metric_span.setdefault(metric.span_id, []).append(metric)
        by_id = {s.id: s for s in spans}
        head = summary(stats_of(canonical, spans), root_of(spans))
        return Trace(
            **head.model_dump(),
            spans=[span_schema(s, by_id, by_metric_span.get(s.id, [])) for s in spans],
        )
