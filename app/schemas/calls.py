"""HTTP models of `POST /v2/call` (Opper v2 wire format, see docs/opper-v2-api.md §2)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field


class ModelObject(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, description="`provider/model`, an alias or a custom model name")
    options: dict[str, Any] | None = Field(None, description="Passed to the provider, e.g. temperature")
    extra_headers: dict[str, str] | None = None


ModelInput = str | ModelObject | list[str | ModelObject]


class ExampleIn(BaseModel):
    input: Any
    output: Any
    comment: str | None = None


class CallRequest(BaseModel):
    name: str = Field(min_length=1, max_length=500, description="The task's name; creates the function")
    instructions: str | None = None
    input_schema: dict[str, Any] | None = None
    output_schema: dict[str, Any] | None = None
    input: Any = None
    model: ModelInput | None = Field(None, description="A model, a model with options, or a fallback list")
    examples: list[ExampleIn] | None = None
    parent_span_id: UUID | None = None
    tags: dict[str, str] | None = None
    configuration: dict[str, Any] | None = None


class OutputTokensDetails(BaseModel):
    reasoning_tokens: int = 0


class UsageOut(BaseModel):
    input_tokens: int
    output_tokens: int
    output_tokens_details: OutputTokensDetails
    total_tokens: int


class CostOut(BaseModel):
    generation: float
    platform: float
    total: float


class CallResponse(BaseModel):
    span_id: str
    message: str | None = None
    json_payload: Any = None
    cached: bool | None = None
    images: list[str] | None = None
    usage: UsageOut | None = None
    cost: CostOut | None = None


class ErrorBody(BaseModel):
    """Every error response: `detail` is always present (the official SDK requires it)."""

    type: str
    message: str
    detail: Any = None
    job_id: str | None = Field(
        None, description="A 503 of a waiting call whose job was accepted: the job to poll (also its `Location`)"
    )
