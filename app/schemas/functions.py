"""HTTP models of functions and revisions (Opper v2 wire format, see docs/opper-v2-api.md §4)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, Field

from app.schemas.calls import ExampleIn, ModelInput
from app.store.functions import FunctionDefinition, FunctionRecord, RevisionRecord

_NAME = Field(min_length=1, max_length=500, description="Unique in the project; may contain `/` and `.`")
_CONFIGURATION = Field(
    None,
    description="`invocation.few_shot.count`, `invocation.structured_generation.max_attempts`, "
    "`invocation.cache.ttl`, `beta.invocation.*`, and `feedback.auto_save` (bool, default true: "
    "positive feedback saves the call to the dataset)",
)


class CreateFunctionRequest(BaseModel):
    name: str = _NAME
    instructions: str
    description: str | None = None
    input_schema: dict[str, Any] | None = None
    output_schema: dict[str, Any] | None = None
    model: ModelInput | None = Field(None, description="A model, a model with options, or a fallback list")
    configuration: dict[str, Any] | None = _CONFIGURATION

    def definition(self) -> FunctionDefinition:
        data = self.model_dump(mode="json", exclude={"name"})
        return FunctionDefinition(**data)


class UpdateFunctionRequest(BaseModel):
    """Every field is optional; a field sent as null is cleared. Any change makes a new revision."""

    name: str | None = Field(None, min_length=1, max_length=500)
    description: str | None = None
    instructions: str | None = None
    input_schema: dict[str, Any] | None = None
    output_schema: dict[str, Any] | None = None
    model: ModelInput | None = None
    configuration: dict[str, Any] | None = _CONFIGURATION


class FunctionOut(BaseModel):
    id: str
    name: str
    instructions: str
    description: str | None = None
    input_schema: dict[str, Any] | None = None
    output_schema: dict[str, Any] | None = None
    model: Any = None
    configuration: dict[str, Any] | None = None
    dataset_id: str | None = None
    revision_id: str | None = None
    observer_enabled: bool = True

    @classmethod
    def of(cls, record: FunctionRecord) -> FunctionOut:
        definition = record.definition
        return cls(
            id=record.id,
            name=record.name,
            instructions=definition.instructions,
            description=definition.description,
            input_schema=definition.input_schema,
            output_schema=definition.output_schema,
            model=definition.model,
            configuration=definition.configuration,
            dataset_id=record.dataset_id,
            revision_id=record.revision_id,
        )


class FunctionListItem(BaseModel):
    id: str
    name: str
    revision_id: str
    description: str | None = None
    instructions: str | None = None
    model: Any = None

    @classmethod
    def of(cls, record: FunctionRecord) -> FunctionListItem:
        definition = record.definition
        return cls(
            id=record.id,
            name=record.name,
            revision_id=record.revision_id,
            description=definition.description,
            instructions=definition.instructions,
            model=definition.model,
        )


class RevisionItem(BaseModel):
    id: str
    configuration: dict[str, Any] = Field(description="The revision's configuration ({} when it has none)")
    created_at: datetime
    updated_at: datetime | None = None

    @classmethod
    def of(cls, revision: RevisionRecord) -> RevisionItem:
        return cls(
            id=revision.id,
            configuration=revision.definition.configuration or {},
            created_at=revision.created_at,
            updated_at=revision.created_at,  # revisions are immutable
        )


class FunctionCallRequest(BaseModel):
    """A call of a stored function: the definition (model, schemas, configuration) is the function's."""

    input: Any = None
    parent_span_id: UUID | None = None
    examples: list[ExampleIn] | None = None
    tags: dict[str, str] | None = None
