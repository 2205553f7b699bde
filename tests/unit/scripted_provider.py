"""An in-memory Provider that plays back a script, and a resolver over a dict of them (no network)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from app.errors import BadRequest
from app.providers.base import (
    Completion,
    CompletionRequest,
    Provider,
    ResolvedModel,
    StreamEvent,
    TextDelta,
    Usage,
)

Step = str | Completion | Exception


@dataclass
class ScriptedProvider:
    """Answers each request with the next step: text (with `usage`), a Completion, or an exception."""

    script: list[Step]
    name: str = "scripted"
    usage: Usage = field(default_factory=lambda: Usage(input_tokens=100, output_tokens=20))
    requests: list[CompletionRequest] = field(default_factory=list)

    async def complete(self, request: CompletionRequest) -> Completion:
        self.requests.append(request)
        if not self.script:
            raise AssertionError(f"{self.name}: unexpected request #{len(self.requests)}")
        step = self.script.pop(0)
        if isinstance(step, Exception):
            raise step
        if isinstance(step, Completion):
            return step
        return Completion(text=step, usage=self.usage, model=request.model, finish_reason="stop")

    async def stream(self, request: CompletionRequest) -> AsyncIterator[StreamEvent]:
        completion = await self.complete(request)
        yield TextDelta(completion.text)
        yield completion


@dataclass
class DictResolver:
    """`provider/model` → the provider registered for that provider prefix."""

    providers: Mapping[str, Provider]

    def resolve(self, model_name: str) -> ResolvedModel:
        prefix, _, model_id = model_name.partition("/")
        if prefix not in self.providers or not model_id:
            raise BadRequest(f"unknown model {model_name!r}", field_name="model")
        return ResolvedModel(provider=self.providers[prefix], model_id=model_id)


@dataclass
class RecordingSleep:
    """An injectable `sleep` that returns at once and remembers how long it was asked to wait."""

    waits: list[float] = field(default_factory=list)

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@dataclass
class TickingClock:
    """Aware UTC datetimes one second apart, so attempt timings are predictable."""

    now: datetime = datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now
