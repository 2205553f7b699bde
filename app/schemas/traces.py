"""HTTP models of traces (Opper v2 wire format, see docs/opper-v2-api.md §6): every text field the
SDK types as `str` (the root's and each span's input/output) is sent as a JSON-encoded string."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class TraceSummary(BaseModel):
    id: str
    start_time: datetime | None = None
    end_time: datetime | None = None
    duration_ms: int | None = None
    status: str | None = Field(None, description="`error` when a call or user span failed, else `success`")
    name: str | None = Field(None, description="The root span's name")
    input: str | None = Field(None, description="The root span's input, JSON-encoded unless already a string")
    output: str | None = Field(None, description="The root span's output, JSON-encoded unless already a string")
    total_tokens: int | None = Field(None, description="Summed over the trace's model attempts")


class SpanMetricData(BaseModel):
    id: str
    dimension: str
    value: float
    created_at: datetime
    comment: str | None = None


class SpanData(BaseModel):
    input: str | None = None
    output: str | None = None
    total_tokens: int | None = None
    model: str | None = None
    instructions: str | None = None
    function: str | None = Field(None, description="The function (task name) the span ran")
    tags: list[str] | None = Field(None, description="The call's tags as `key:value`")
    score: int | None = None
    generation_id: str | None = None
    observations: str | None = None
    scorer_context: dict[str, Any] | None = None


class SpanSchema(BaseModel):
    id: str | None = None
    name: str | None = None
    type: str | None = None
    parent_id: str | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    duration_ms: int | None = None
    error: str | None = None
    meta: dict[str, Any] | None = None
    score: int | None = None
    data: SpanData | None = None
    metrics: list[SpanMetricData] | None = None


class Trace(TraceSummary):
    spans: list[SpanSchema] | None = None
