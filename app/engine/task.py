"""A fully resolved task: what the engine needs to complete one call, with no HTTP or queue concepts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DEFAULT_INSTRUCTIONS = "You are a helpful assistant"


@dataclass(frozen=True)
class ModelSpec:
    """One model of a fallback chain: `provider/model-id`, with options passed to the provider."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)
    extra_headers: dict[str, str] = field(default_factory=dict)

    @property
    def provider(self) -> str:
        return self.name.split("/", 1)[0]

    @property
    def model_id(self) -> str:
        return self.name.split("/", 1)[1] if "/" in self.name else self.name


@dataclass(frozen=True)
class Example:
    input: Any
    output: Any
    comment: str | None = None


@dataclass(frozen=True)
class InvocationConfig:
    """The `configuration` keys that change how a call runs (Opper names in comments)."""

    max_attempts: int = 5  # invocation.structured_generation.max_attempts
    cache_ttl: int = 0  # invocation.cache.ttl (seconds; 0 = off)
    few_shot_count: int = 3  # invocation.few_shot.count
    input_validation: bool = False  # beta.invocation.input_validation.enabled
    xml_mode: bool = False  # beta.invocation.xml_mode.enabled (accepted; JSON is always used)


@dataclass(frozen=True)
class TaskSpec:
    name: str
    instructions: str = DEFAULT_INSTRUCTIONS
    input_schema: dict[str, Any] | None = None
    output_schema: dict[str, Any] | None = None
    input: Any = None
    examples: tuple[Example, ...] = ()
    models: tuple[ModelSpec, ...] = ()
    config: InvocationConfig = field(default_factory=InvocationConfig)
    tags: dict[str, str] = field(default_factory=dict)


_DEFAULT_CONFIG = InvocationConfig()


def task_to_dict(task: TaskSpec) -> dict[str, Any]:
    """JSON-ready form, stored on the job row so a worker can rebuild exactly what the API accepted
    (`task_from_dict`). Parts at their defaults (no schema, no examples, a model's empty options, a
    configuration key at its default, no tags) are left out: each job row is smaller, and a worker
    holds the decoded task for as long as the call runs (about a kilobyte less per call in flight)."""
    data: dict[str, Any] = {"name": task.name, "instructions": task.instructions, "input": task.input}
    if task.input_schema is not None:
        data["input_schema"] = task.input_schema
    if task.output_schema is not None:
        data["output_schema"] = task.output_schema
    if task.examples:
        data["examples"] = [{"input": e.input, "output": e.output, "comment": e.comment} for e in task.examples]
    data["models"] = [_model_dict(m) for m in task.models]
    config = {
        key: getattr(task.config, key)
        for key in InvocationConfig.__dataclass_fields__
        if getattr(task.config, key) != getattr(_DEFAULT_CONFIG, key)
    }
    if config:
        data["config"] = config
    if task.tags:
        data["tags"] = task.tags
    return data


def _model_dict(model: ModelSpec) -> dict[str, Any]:
    data: dict[str, Any] = {"name": model.name}
    if model.options:
        data["options"] = model.options
    if model.extra_headers:
        data["extra_headers"] = model.extra_headers
    return data


def task_from_dict(data: dict[str, Any]) -> TaskSpec:
    return TaskSpec(
        name=data["name"],
        instructions=data.get("instructions") or DEFAULT_INSTRUCTIONS,
        input_schema=data.get("input_schema"),
        output_schema=data.get("output_schema"),
        input=data.get("input"),
        examples=tuple(Example(**e) for e in data.get("examples") or ()),
        models=tuple(
            ModelSpec(m["name"], dict(m.get("options") or {}), dict(m.get("extra_headers") or {}))
            for m in data.get("models") or ()
        ),
        config=InvocationConfig(**(data.get("config") or {})),
        tags=dict(data.get("tags") or {}),
    )
