"""Streaming execution: a call whose attempts stream from the provider, reported as messages.

The fallback chain is the same as for a plain call (one execution model); with a listener every
attempt is a provider stream whose text deltas are reported as they arrive. What a client has seen
cannot be taken back, so the rule for a stream is:

- A failure before any output reached the client (a 503, a refused connection) is invisible: the
  next attempt or model simply streams.
- A failure after output reached the client (the provider broke off, the answer failed the output
  schema) is followed, if another attempt comes, by a `reset` message and then that attempt's
  deltas, from the start. If nothing else comes, the stream ends with the call's error.

The engine knows no wire format: it reports to a `StreamSink`; the worker publishes what it is told as
`StreamMessage`s (app/services/stream_messages.py), which the API turns into Opper SSE chunks.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Protocol

from app.engine.deps import EngineDeps
from app.engine.executor import complete_task
from app.engine.results import AttemptRecord, CallResult
from app.engine.task import Example, TaskSpec

RESTART_MESSAGE = "the worker running this call stopped and another one restarted it; discard the output so far"


class AttemptListener(Protocol):
    """What the attempt loop reports while streaming."""

    async def on_delta(self, text: str) -> None: ...

    async def on_attempt_failed(self, record: AttemptRecord) -> None: ...


class StreamSink(Protocol):
    """Where a streaming call's output goes: `delta` is more output text; `reset` means discard the output
    so far, a new attempt follows (with the reason). The worker puts both on the wire
    (app/services/stream_messages.py)."""

    async def delta(self, text: str) -> None: ...

    async def reset(self, error_type: str, message: str) -> None: ...


class StreamPublisher:
    """An AttemptListener that publishes deltas, and a reset before a retry whose predecessor showed output."""

    def __init__(self, sink: StreamSink, *, restarted: bool = False) -> None:
        self._sink = sink
        self._showing = False  # the client holds output of an attempt that is still running or won
        # A redelivered job may have streamed from its first worker: owe the client a reset.
        self._owed_reset: tuple[str, str] | None = ("WorkerLost", RESTART_MESSAGE) if restarted else None

    async def on_delta(self, text: str) -> None:
        if self._owed_reset is not None:
            error_type, message = self._owed_reset
            self._owed_reset = None
            await self._sink.reset(error_type, message)
        self._showing = True
        await self._sink.delta(text)

    async def on_attempt_failed(self, record: AttemptRecord) -> None:
        if self._showing or self._owed_reset is not None:
            message = (
                f"attempt {record.attempt} on {record.model} failed: {record.error_message}; a new attempt follows"
            )
            self._owed_reset = (record.error_type or "AttemptFailed", message)
            self._showing = False

    async def answer_not_streamed(self, result: CallResult) -> None:
        """A result that streamed nothing (a cache hit) goes out whole, as one delta."""
        if not self._showing:
            await self.on_delta(result.message if result.message is not None else json.dumps(result.json_payload))


async def complete_streaming(
    task: TaskSpec,
    deps: EngineDeps,
    *,
    cache_scope: str,
    sink: StreamSink,
    restarted: bool = False,
    extra_examples: Sequence[Example] = (),
    priority: int = 1,
    max_rate_wait: float | None = None,
) -> CallResult:
    """`complete_task`, publishing the output as it is generated. Raises what `complete_task` raises
    (`RateLimitWaitExceeded` before anything was published: the first request is admitted first)."""
    publisher = StreamPublisher(sink, restarted=restarted)
    result = await complete_task(
        task,
        deps,
        cache_scope=cache_scope,
        extra_examples=extra_examples,
        priority=priority,
        max_rate_wait=max_rate_wait,
        listener=publisher,
    )
    await publisher.answer_not_streamed(result)
    return result
