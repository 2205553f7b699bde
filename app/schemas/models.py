"""HTTP models of `/v2/models`: the price-table models, custom models and aliases (docs/opper-v2-api.md §8)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

NameStr = Annotated[str, StringConstraints(min_length=1, max_length=300)]
ModelName = Annotated[str, StringConstraints(min_length=1, max_length=300)]

EXTRA_DESCRIPTION = (
    "`api_base` (required): the OpenAI-compatible base URL, e.g. `http://localhost:11434/v1`; prices "
    "(optional, USD): `input_cost_per_token` and `output_cost_per_token`, or `input_cost_per_million` and "
    "`output_cost_per_million`. Other keys are kept as metadata."
)


class LanguageModelOut(BaseModel):
    hosting_provider: str
    name: str
    location: str
    input_cost_per_token: float | None = None
    output_cost_per_token: float | None = None


class CustomModelCreate(BaseModel):
    name: NameStr = Field(description="Unique in the project; usable as a `model` value in calls")
    identifier: NameStr = Field(description="The model id sent to the endpoint, e.g. `llama3.1:8b`")
    extra: dict[str, Any] | None = Field(None, description=EXTRA_DESCRIPTION)
    api_key: str | None = Field(None, description="Stored encrypted; never returned")


class CustomModelUpdate(BaseModel):
    """Omitted fields stay as they are; `api_key: null` removes the stored key."""

    name: NameStr | None = None
    identifier: NameStr | None = None
    extra: dict[str, Any] | None = Field(None, description=EXTRA_DESCRIPTION + " Replaces the stored `extra`.")
    api_key: str | None = Field(None, description="Stored encrypted; never returned; null removes it")


class CustomModelOut(BaseModel):
    """A custom model as returned: there is deliberately no `api_key` field."""

    model_config = ConfigDict(extra="forbid")

    id: str
    name: str
    identifier: str
    extra: dict[str, Any] = Field(default_factory=dict)


class AliasCreate(BaseModel):
    name: NameStr = Field(description="Unique in the project; usable wherever a model name is")
    fallback_models: list[ModelName] = Field(
        min_length=1, max_length=20, description="Models (or aliases, or custom models) tried in this order"
    )
    description: str | None = Field(None, max_length=2000)


class AliasUpdate(BaseModel):
    """Omitted fields stay as they are; `description: null` clears the description."""

    name: NameStr | None = None
    fallback_models: list[ModelName] | None = Field(None, min_length=1, max_length=20)
    description: str | None = Field(None, max_length=2000)


class AliasOut(BaseModel):
    id: str
    name: str
    fallback_models: list[str]
    description: str | None = None
