"""What a provider's batch API looks like to Conveyor, whichever provider it is: submit many requests
at once, find a batch again by the metadata it was created with, poll it, cancel it, read its answers.

Adapters that have one (OpenAI and compatible endpoints, Anthropic) return it from `batch_api()`;
`batch_api_of` says whether a resolved model has one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from app.errors import ProviderError
from app.providers.base import Completion, CompletionRequest, ResolvedModel


@dataclass(frozen=True)
class BatchLine:
    """One request of a provider batch: the very request the synchronous path would send."""

    custom_id: str
    request: CompletionRequest


@dataclass(frozen=True)
class RemoteBatch:
    """A provider batch as last seen. `ended`: it will change no more; its answers can be read."""

    id: str
    state: str
    ended: bool
    metadata: dict[str, Any] = field(default_factory=dict)
    handles: dict[str, Any] = field(default_factory=dict)  # where its answers are (file ids, results URL)


@dataclass(frozen=True)
class LineResult:
    """One line's outcome: an answer, a provider error, or neither (expired or cancelled, never run)."""

    custom_id: str
    completion: Completion | None = None
    error: ProviderError | None = None

    @property
    def unanswered(self) -> bool:
        return self.completion is None and self.error is None


@dataclass(frozen=True)
class BatchIntent:
    """A provider batch Conveyor meant to create, to find again after a crash: by its `marker` where the
    provider keeps metadata (OpenAI), else by listing (Anthropic): a batch of `count` requests created
    after `created_after` (epoch seconds) that is none of the `taken` ones already recorded."""

    marker: str
    created_after: float
    count: int
    taken: frozenset[str] = frozenset()


class ProviderBatchAPI(Protocol):
    max_requests: int
    max_bytes: int

    def line_size(self, line: BatchLine) -> int: ...

    async def submit(self, lines: Sequence[BatchLine], intent: BatchIntent) -> RemoteBatch: ...

    async def find(self, intent: BatchIntent) -> RemoteBatch | None: ...

    async def get(self, batch_id: str) -> RemoteBatch: ...

    async def cancel(self, batch_id: str) -> RemoteBatch: ...

    def results(self, batch: RemoteBatch) -> AsyncIterator[list[LineResult]]: ...


def batch_api_of(resolved: ResolvedModel) -> ProviderBatchAPI | None:
    """The batch API of a resolved model's adapter, or None when its provider has none."""
    factory = getattr(resolved.provider, "batch_api", None)
    return factory() if callable(factory) else None
