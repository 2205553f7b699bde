"""The small protocol every model provider adapter implements, and the types that cross it."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True)
class Message:
    role: Role
    content: str


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.reasoning_tokens + other.reasoning_tokens,
        )

    def as_opper(self) -> dict[str, Any]:
        """The `usage` object of an Opper call response."""
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "output_tokens_details": {"reasoning_tokens": self.reasoning_tokens},
            "total_tokens": self.total_tokens,
        }


@dataclass(frozen=True)
class CompletionRequest:
    """One request to one model. `model` is the provider-side id (no `provider/` prefix)."""

    model: str
    messages: tuple[Message, ...]
    options: Mapping[str, Any] = field(default_factory=dict)  # passed through (temperature, max_tokens...)
    extra_headers: Mapping[str, str] = field(default_factory=dict)
    # When set, ask for this JSON Schema through the provider's native structured-output mode
    # (OpenAI response_format json_schema, Anthropic forced tool use).
    json_schema: Mapping[str, Any] | None = None
    schema_name: str = "output"
    # When True without json_schema, ask for a JSON object (OpenAI json_object mode; Anthropic: prompt only).
    json_mode: bool = False


@dataclass(frozen=True)
class Completion:
    """A finished answer. For native structured output `text` is the JSON text of the tool/format output."""

    text: str
    usage: Usage
    model: str
    finish_reason: str | None = None
    provider_request_id: str | None = None


@dataclass(frozen=True)
class TextDelta:
    """A piece of streamed output text (JSON text in structured mode)."""

    text: str


StreamEvent = TextDelta | Completion  # a stream yields deltas, then exactly one Completion last


@runtime_checkable
class Provider(Protocol):
    """A model provider. Implementations raise `app.errors.ProviderError` subclasses on failure."""

    name: str

    async def complete(self, request: CompletionRequest) -> Completion: ...

    def stream(self, request: CompletionRequest) -> AsyncIterator[StreamEvent]: ...


@dataclass(frozen=True)
class ResolvedModel:
    """Where a model name goes: the adapter to use and the provider-side model id to send.

    `provider_key_id` names the provider API key the requests go out with (`provider_key_id` below,
    "" when there is none): providers count their limits per key, so the rate limiter does too."""

    provider: Provider
    model_id: str
    provider_key_id: str = ""


def provider_key_id(api_key: str) -> str:
    """A short, stable, non-reversible id of a provider API key: separate keys, separate budgets."""
    if not api_key:
        return ""
    return hashlib.sha256(api_key.encode()).hexdigest()[:12]


class ModelResolver(Protocol):
    """Maps `provider/model` (or a registered custom model name) to an adapter; raises BadRequest."""

    def resolve(self, model_name: str) -> ResolvedModel: ...
