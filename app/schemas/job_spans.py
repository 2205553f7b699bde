"""HTTP model of `GET /v2/spans`: the spans of jobs with their model, usage, cost and timing."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from app.store.tables import Span


class SpanCostOut(BaseModel):
    generation: float
    platform: float
    total: float


class SpanUsageOut(BaseModel):
    input_tokens: int
    output_tokens: int
    reasoning_tokens: int
    total_tokens: int


class JobSpanOut(BaseModel):
    """A call span (the job as a whole) or a `generation` span (one model attempt)."""

    id: str
    job_id: str
    trace_id: str
    parent_id: str | None = None
    type: str | None = Field(None, description="`call` or `generation`")
    name: str
    model: str | None = Field(None, description="The model that answered (call) or was tried (generation)")
    start_time: datetime | None = None
    end_time: datetime | None = None
    duration_ms: int | None = None
    input: Any = Field(None, description="The call's input, as sent (call spans)")
    output: Any = Field(None, description="The answer: text or JSON")
    error: str | None = None
    cached: bool | None = None
    meta: dict[str, Any] | None = None
    tags: dict[str, str] | None = None
    usage: SpanUsageOut
    cost: SpanCostOut

    @classmethod
    def of(cls, span: Span) -> JobSpanOut:
        duration = None
        if span.start_time is not None and span.end_time is not None:
            duration = int((span.end_time - span.start_time).total_seconds() * 1000)
        generation, platform = span.cost_generation or 0.0, span.cost_platform or 0.0
        return cls(
            id=span.id,
            job_id=span.job_id or "",
            trace_id=span.trace_id,
            parent_id=span.parent_id,
            type=span.type,
            name=span.name,
            model=span.model,
            start_time=span.start_time,
            end_time=span.end_time,
            duration_ms=duration,
            input=span.input,
            output=span.output,
            error=span.error,
            cached=span.cached,
            meta=span.meta,
            tags=span.tags,
            usage=SpanUsageOut(
                input_tokens=span.input_tokens or 0,
                output_tokens=span.output_tokens or 0,
                reasoning_tokens=span.reasoning_tokens or 0,
                total_tokens=span.total_tokens or 0,
            ),
            cost=SpanCostOut(generation=generation, platform=platform, total=generation + platform),
        )
