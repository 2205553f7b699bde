"""A hook the engine calls once per model attempt, for whoever watches calls from outside (tracing).

The engine knows no telemetry framework: it reports each finished attempt, with the request it sent
and the completion it got (when one arrived), to an injected `AttemptObserver`, and carries on; and a
call answered from the result cache, which makes no attempt, is reported as such. The observer runs on
the call's own task (its context is the caller's: a tracer finds its parent span there), must not
block, and must not raise; `EngineDeps.observer` None costs nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from app.engine.results import AttemptRecord
from app.providers.base import Completion, CompletionRequest


@dataclass(frozen=True)
class ObservedAttempt:
    """One finished request to one model: its record (times, usage, error), what was sent, what came back."""

    record: AttemptRecord
    provider: str  # the adapter's name: the model name's prefix (`openai`, `anthropic`, ...)
    request: CompletionRequest
    completion: Completion | None  # None when the provider answered with an error
    # Answered by a provider's batch API (app/engine/batch_answers.py): its times are when the answer
    # was read, not when the provider ran it.
    from_provider_batch: bool = False


@dataclass(frozen=True)
class CacheHit:
    """A call answered from the result cache: no model was asked."""

    model: str  # the model whose answer was cached (`provider/name`)
    started_at: datetime  # the cache lookup's start and end
    ended_at: datetime


class AttemptObserver(Protocol):
    def attempt_ended(self, attempt: ObservedAttempt) -> None: ...

    def answered_from_cache(self, hit: CacheHit) -> None: ...
