"""HTTP models of spans and span metrics (Opper v2 wire format, see docs/opper-v2-api.md §6)."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

from pydantic import AfterValidator, BaseModel, ConfigDict, Field


def as_utc(value: datetime) -> datetime:
    """Naive datetimes are taken as UTC (the SDK sends naive ones without an offset)."""
    try:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+14:00 is before year 1 in UTC: was a 500
        raise ValueError("is out of range once converted to UTC (years 1 to 9999)") from None


def finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


UTCTimestamp = Annotated[datetime, AfterValidator(as_utc)]
FiniteFloat = Annotated[float, AfterValidator(finite)]
SpanName = Annotated[str, Field(min_length=1, max_length=500)]
SpanType = Annotated[str, Field(max_length=32)]
Dimension = Annotated[str, Field(min_length=1, max_length=200)]
# stored in a 32-bit INTEGER column: a larger number was a database error (a 500), now a 422 naming it
SpanScore = Annotated[int, Field(ge=-(2**31), le=2**31 - 1)]


class SpanCreate(BaseModel):
    name: SpanName = Field(description="What the span does; the trace's name when it is the root")
    id: UUID | None = Field(None, description="Client-chosen span id (a new UUID when absent)")
    trace_id: UUID | None = Field(None, description="Client-chosen trace id; defaults to the parent's or a new one")
    parent_id: UUID | None = Field(None, description="A span of this project; the new span joins its trace")
    type: SpanType | None = None
    start_time: UTCTimestamp | None = Field(None, description="Defaults to now")
    end_time: UTCTimestamp | None = None
    input: Any = None
    output: Any = None
    error: str | None = None
    meta: dict[str, Any] | None = None
    score: SpanScore | None = None


class SpanUpdate(BaseModel):
    """Fields left out stay as they are; fields sent as null are cleared (`name` cannot be)."""

    name: SpanName | None = None
    type: SpanType | None = None
    start_time: UTCTimestamp | None = None
    end_time: UTCTimestamp | None = None
    input: str | None = None
    output: str | None = None
    error: str | None = None
    meta: dict[str, Any] | None = None
    score: SpanScore | None = None


class SpanOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    trace_id: str | None = None
    parent_id: str | None = None
    type: str | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    input: Any = None
    output: Any = None
    error: str | None = None
    meta: dict[str, Any] | None = None
    score: int | None = None


class FeedbackInfo(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    score: float
    comment: str | None = None


class SpanWithFeedback(SpanOut):
    feedback: FeedbackInfo | None = Field(None, description="The latest human feedback, if any")


class MetricCreate(BaseModel):
    dimension: Dimension = Field(description="What is measured; unique per span")
    value: FiniteFloat
    comment: str | None = None


class MetricUpdate(BaseModel):
    """Fields left out stay as they are; `dimension` and `value` cannot be null."""

    dimension: Dimension | None = None
    value: FiniteFloat | None = None
    comment: str | None = None


class MetricOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    span_id: str
    dimension: str
    value: float
    created_at: datetime
    comment: str | None = None
