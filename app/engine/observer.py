"""A hook the engine calls once per model attempt, for whoever watches calls from outside (tracing).

The engine knows no telemetry framework: it reports each finished attempt, with the request it sent
and the completion it got (when one arrived), to an injected `AttemptObserver`, and carries on. The
observer runs on the call's own task (its context is the caller's: a tracer finds its parent span
there), must not block, and must not raise; `EngineDeps.observer` None costs nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
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


class AttemptObserver(Protocol):
    def attempt_ended(self, attempt: ObservedAttempt) -> None: ...
