"""Turns a `/call` request into a resolved TaskSpec, refusing bad input with a 400 that names the field."""

from __future__ import annotations

from typing import Any

from app.engine.executor import check_task_schemas, validate_task_input
from app.engine.task import DEFAULT_INSTRUCTIONS, Example, InvocationConfig, ModelSpec, TaskSpec
from app.errors import BadRequest
from app.providers.base import ModelResolver
from app.schemas.calls import CallRequest, ModelInput, ModelObject

# configuration key -> (InvocationConfig field, type, lowest, highest)
_CONFIG_KEYS: dict[str, tuple[str, type, int, int]] = {
    "invocation.structured_generation.max_attempts": ("max_attempts", int, 1, 20),
    "invocation.cache.ttl": ("cache_ttl", int, 0, 30 * 24 * 3600),
    "invocation.few_shot.count": ("few_shot_count", int, 0, 50),
    "beta.invocation.input_validation.enabled": ("input_validation", bool, 0, 1),
    "beta.invocation.xml_mode.enabled": ("xml_mode", bool, 0, 1),
}


def parse_configuration(configuration: dict[str, Any] | None) -> InvocationConfig:
    """Known keys are checked; unknown keys are ignored, as the official SDK drops them too."""
    values: dict[str, Any] = {}
    for key, raw in (configuration or {}).items():
        if key not in _CONFIG_KEYS:
            continue
        field, kind, low, high = _CONFIG_KEYS[key]
        if kind is bool:
            if not isinstance(raw, bool):
                raise BadRequest("must be true or false", field_name=f"configuration.{key}")
        elif isinstance(raw, bool) or not isinstance(raw, int) or not low <= raw <= high:
            raise BadRequest(f"must be an integer from {low} to {high}", field_name=f"configuration.{key}")
        values[field] = raw
    return InvocationConfig(**values)


def parse_models(model: ModelInput | None, default_model: str, resolver: ModelResolver) -> tuple[ModelSpec, ...]:
    if model is None:
        entries: list[str | ModelObject] = [default_model]
    elif isinstance(model, list):
        if not model:
            raise BadRequest("the fallback list is empty; give at least one model", field_name="model")
        entries = model
    else:
        entries = [model]
    specs = []
    for index, entry in enumerate(entries):
        spec = (
            ModelSpec(entry)
            if isinstance(entry, str)
            else ModelSpec(entry.name, dict(entry.options or {}), dict(entry.extra_headers or {}))
        )
        try:
            resolver.resolve(spec.name)
        except BadRequest as exc:
            where = "model" if len(entries) == 1 and not isinstance(model, list) else f"model[{index}]"
            raise BadRequest(exc.message, field_name=where) from None
        specs.append(spec)
    return tuple(specs)


def build_task(request: CallRequest, *, default_model: str, resolver: ModelResolver) -> TaskSpec:
    task = TaskSpec(
        name=request.name,
        instructions=request.instructions or DEFAULT_INSTRUCTIONS,
        input_schema=request.input_schema,
        output_schema=request.output_schema,
        input=request.input,
        examples=tuple(Example(e.input, e.output, e.comment) for e in request.examples or ()),
        models=parse_models(request.model, default_model, resolver),
        config=parse_configuration(request.configuration),
        tags=dict(request.tags or {}),
    )
    check_task_schemas(task)
    validate_task_input(task)
    return task


def function_definition(request: CallRequest) -> dict[str, Any]:
    """What a function revision records from a `/call` request."""
    data = request.model_dump(mode="json", include={"input_schema", "output_schema", "model", "configuration"})
    return {"instructions": request.instructions or DEFAULT_INSTRUCTIONS, **data}
