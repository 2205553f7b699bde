"""OpenTelemetry traces, on only when an OTLP endpoint is configured: the one module the rest imports.

With `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) set, the API and the
workers export spans over OTLP, configured by the standard OTel environment variables (see
otel.py). Unset, nothing from `opentelemetry` is imported and every hook here is a cheap no-op:
this module imports no OTel package itself, and loads the modules that do only once tracing is on.

One call is one trace across processes: the API's request span (api_spans.py), whose context is stored
with the job it submits (`jobs.trace_context`); the job's span in the worker, started when the job is
claimed, a child of that stored context, so every run of the job (first, deferred, redelivered, re-sent
after a crash) is in the call's trace whatever its message carried; and one `chat {model}` span per
model attempt following the GenAI semantic conventions (genai.py, fed by the engine's attempt observer,
app/engine/observer.py). A batch is one request span; each item is a trace of its own (the item's
Conveyor trace) whose runs link to it (worker_spans.py says why).
"""

from __future__ import annotations

import os
from collections.abc import Coroutine, Mapping
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    from fastapi import FastAPI

    from app.engine.observer import AttemptObserver

T = TypeVar("T")
Job = Coroutine[Any, Any, T]  # a job's coroutine, as the worker's pool runs it

API_SERVICE = "conveyor-api"
WORKER_SERVICE = "conveyor-worker"


class RequestTrace(Protocol):
    """The request span of the HTTP request being handled (api_spans.RequestSpan)."""

    def join(self, trace_id: str, parent_span_id: str | None) -> None: ...

    def trace_context(self) -> str: ...

    def set_attribute(self, key: str, value: str) -> None: ...


class TracedJob(Protocol):
    """What the worker's spans need of a job (a store JobRecord)."""

    id: str
    trace_id: str  # Conveyor's
    batch_id: str | None
    trace_context: str | None


class JobTracer(Protocol):
    """The worker's spans (worker_spans.WorkerTracer)."""

    observer: AttemptObserver

    def run_job(self, task: str, headers: Mapping[str, Any], args: tuple[Any, ...], job: Job[T]) -> Job[T]: ...

    def job_claimed(self, job: TracedJob) -> None: ...

    def job_deferred(self) -> None: ...

    def batch_answer(self, job: TracedJob, answer: Job[T]) -> Job[T]: ...


# Set by the API's tracing middleware for the length of a request; unset when tracing is off.
_request: ContextVar[RequestTrace | None] = ContextVar("conveyor_request_trace", default=None)
# The worker process's tracer, set once at its bootstrap (`start_worker`).
_worker: JobTracer | None = None


def enabled(environ: Mapping[str, str] = os.environ) -> bool:
    """An OTLP endpoint is configured, and neither the SDK nor the traces exporter is switched off."""
    endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if not (endpoint or "").strip():
        return False
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    return environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() != "none"


def instrument_api(app: FastAPI, environ: Mapping[str, str] = os.environ) -> None:
    """Give the API a request span per HTTP request, exported as `conveyor-api`, when tracing is on."""
    if not enabled(environ):
        return
    from app.observability import api_spans

    api_spans.install(app, _request, environ)


def start_worker(environ: Mapping[str, str] = os.environ) -> None:
    """Export this worker process's job and model-attempt spans as `conveyor-worker`, when tracing is on."""
    global _worker
    if not enabled(environ):
        _worker = None
        return
    from app.observability import worker_spans

    _worker = worker_spans.WorkerTracer.start(environ)


def stop_worker() -> None:
    """Flush and stop the worker's exporter (also done at process exit)."""
    global _worker
    if _worker is not None:
        tracer, _worker = _worker, None
        tracer.shutdown()  # type: ignore[attr-defined]


def attempt_observer() -> AttemptObserver | None:
    """The engine's attempt observer in a tracing worker; None otherwise."""
    return _worker.observer if _worker is not None else None


def traced_job(task: str, headers: Mapping[str, Any], args: tuple[Any, ...], job: Job[T]) -> Job[T]:
    """`job` (a job's coroutine, as the worker's pool runs a message) inside a job span, which starts
    when the job is claimed (`job_claimed`) with the time the message arrived; `job` itself when
    tracing is off."""
    if _worker is None:
        return job
    return _worker.run_job(task, headers, args, job)


def job_claimed(job: TracedJob) -> None:
    """The job being run (in `traced_job`) was claimed: its span starts, in the job's trace, and is the
    current span of what the job does next. No-op when not tracing."""
    if _worker is not None:
        _worker.job_claimed(job)


def job_deferred() -> None:
    """The job being run goes back to the queue (no rate-limit room): its span says so."""
    if _worker is not None:
        _worker.job_deferred()


def traced_batch_answer(job: TracedJob, answer: Job[T]) -> Job[T]:
    """`answer` (a batch item's call carried on from its provider-batch answer) inside a span of the
    item's trace; `answer` itself when tracing is off."""
    if _worker is None:
        return answer
    return _worker.batch_answer(job, answer)


def trace_context() -> str | None:
    """The current request span's context (propagation headers as JSON), to store with the job or batch
    it submits; None when not tracing."""
    request = _request.get()
    return request.trace_context() if request is not None else None


def note_request(key: str, value: str) -> None:
    """An attribute on the current request's span (a batch's id, to find it by); no-op when not tracing."""
    request = _request.get()
    if request is not None:
        request.set_attribute(key, value)


def join_stored_trace(trace_id: str, parent_span_id: str | None) -> None:
    """The call being handled belongs to Conveyor's trace `trace_id` (under span `parent_span_id`,
    Opper's way of nesting calls): its exported spans join the OTel trace of the same id, unless the
    request's `traceparent` header put it in the caller's trace already. No-op when not tracing."""
    request = _request.get()
    if request is not None:
        request.join(trace_id, parent_span_id)
