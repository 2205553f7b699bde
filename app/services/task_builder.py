"""Turns a `/call` request into a resolved TaskSpec, refusing bad input with a 400 that names the field."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from app.engine.executor import check_task_schemas, validate_task_input
from app.engine.structured import check_schema
from app.engine.task import DEFAULT_INSTRUCTIONS, Example, InvocationConfig, ModelSpec, TaskSpec
from app.errors import BadRequest
from app.providers.base import ModelResolver
from app.schemas.calls import CallRequest, ModelInput, ModelObject
from app.schemas.functions import FunctionCallRequest
from app.store.functions import AUTO_SAVE_KEY, FunctionDefinition, FunctionRecord

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


ModelExpander = Callable[[tuple[ModelSpec, ...]], tuple[ModelSpec, ...]]
"""A project's `ModelCatalog.expand`: aliases to their fallbacks, custom model names to `custom/<id>`."""


def model_names(model: ModelInput | None) -> list[str]:
    """The top-level model names a request gives (before expansion)."""
    entries = model if isinstance(model, list) else [model] if model is not None else []
    return [entry if isinstance(entry, str) else entry.name for entry in entries]


def parse_models(
    model: ModelInput | None, default_model: str, resolver: ModelResolver, expand: ModelExpander | None = None
) -> tuple[ModelSpec, ...]:
    """The chain to run. With `expand` (sync, reads the database: call from a thread), aliases and custom
    model names are expanded first; each resulting model must then resolve to a provider."""
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
            expanded = expand((spec,)) if expand is not None else (spec,)
            for one in expanded:
                resolver.resolve(one.name)
        except BadRequest as exc:
            where = "model" if len(entries) == 1 and not isinstance(model, list) else f"model[{index}]"
            raise BadRequest(exc.message, field_name=where) from None
        specs.extend(expanded)
    return tuple(specs)


def build_task(
    request: CallRequest, *, default_model: str, resolver: ModelResolver, expand: ModelExpander | None = None
) -> TaskSpec:
    task = TaskSpec(
        name=request.name,
        instructions=request.instructions or DEFAULT_INSTRUCTIONS,
        input_schema=request.input_schema,
        output_schema=request.output_schema,
        input=request.input,
        examples=tuple(Example(e.input, e.output, e.comment) for e in request.examples or ()),
        models=parse_models(request.model, default_model, resolver, expand),
        config=parse_configuration(request.configuration),
        tags=dict(request.tags or {}),
    )
    check_task_schemas(task)
    validate_task_input(task)
    return task


def function_definition(request: CallRequest) -> FunctionDefinition:
    """What a function revision records from a `/call` request."""
    data = request.model_dump(mode="json", include={"input_schema", "output_schema", "model", "configuration"})
    return FunctionDefinition(instructions=request.instructions or DEFAULT_INSTRUCTIONS, **data)


def check_definition_parts(
    *,
    resolver: ModelResolver,
    default_model: str,
    input_schema: dict[str, Any] | None = None,
    output_schema: dict[str, Any] | None = None,
    model: ModelInput | None = None,
    configuration: dict[str, Any] | None = None,
    expand: ModelExpander | None = None,
) -> None:
    """Refuse (400, naming the field) a function definition's schemas, model or configuration."""
    if input_schema is not None:
        check_schema(input_schema, "input_schema")
    if output_schema is not None:
        check_schema(output_schema, "output_schema")
    parse_models(model, default_model, resolver, expand)
    parse_configuration(configuration)
    auto_save = (configuration or {}).get(AUTO_SAVE_KEY)
    if auto_save is not None and not isinstance(auto_save, bool):
        raise BadRequest("must be true or false", field_name=f"configuration.{AUTO_SAVE_KEY}")


def function_call_request(function: FunctionRecord, body: FunctionCallRequest) -> CallRequest:
    """A `/call` request equivalent to calling the stored function (at its revision) with `body`."""
    definition = function.definition
    try:
        return CallRequest(
            name=function.name,
            instructions=definition.instructions or None,
            input_schema=definition.input_schema,
            output_schema=definition.output_schema,
            input=body.input,
            model=definition.model,
            examples=body.examples,
            parent_span_id=body.parent_span_id,
            tags=body.tags,
            configuration=definition.configuration,
        )
    except ValidationError as exc:  # stored definitions were validated; this guards older rows
        raise BadRequest(
            f"the stored definition of function {function.name!r} cannot be used: {exc.errors()[0]['msg']}",
            field_name="function_id",
        ) from None
