"""OTel ids from Conveyor's ids, and an id generator that gives a root span a chosen trace id.

Conveyor's ids are UUIDs: a trace id maps to its 32 hex digits, a span id to its first 16. A root call
(the API's request span) and every run of a batch item (the worker's job span) take their trace id
from the Conveyor trace of the call, so `GET /v2/traces/{id}` and a tracing backend show the same id,
and each run of a job, on whichever worker and after whatever re-send, lands in the same trace.
Imported only when tracing is on.
"""

from __future__ import annotations

import contextlib
import hashlib
import uuid
from collections.abc import Iterator
from contextvars import ContextVar

from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

# The trace id a root span about to start must have.
_chosen_trace_id: ContextVar[int | None] = ContextVar("conveyor_chosen_trace_id", default=None)


class ChosenTraceIds(RandomIdGenerator):
    """Random ids, except a root span's trace id when one was chosen for it (`trace_id_of`)."""

    def generate_trace_id(self) -> int:
        return _chosen_trace_id.get() or super().generate_trace_id()


@contextlib.contextmanager
def trace_id_of(trace_id: int | None) -> Iterator[None]:
    """Spans started inside that are roots get this trace id (a span with a parent keeps its parent's)."""
    token = _chosen_trace_id.set(trace_id)
    try:
        yield
    finally:
        _chosen_trace_id.reset(token)


def otel_id(conveyor_id: str, hex_digits: int) -> int:
    """A Conveyor id (a UUID; any other string is hashed) as an OTel trace (32) or span (16) id."""
    try:
        digits = uuid.UUID(conveyor_id).hex
    except ValueError:
        digits = hashlib.sha256(conveyor_id.encode()).hexdigest()
    return int(digits[:hex_digits], 16) or 1
