"""A worker's spans: one per run of a job (kind CONSUMER), one per batch item answered through a
provider's batch API, and, under them, the GenAI spans of its model attempts and cache hits (genai.py).

A job's span starts when the job is claimed, with the time its message arrived as its start: only the
job's row says which trace the job belongs to. Its parent is the trace context the API request that
submitted the job stored with it (`jobs.trace_context`), so every run of the job (the first, one
deferred for rate-limit room, one put back on the queue, a re-send by the sweep after its worker
died) is a child of that request's span, whatever its message carried. A message whose job is not claimable (a
duplicate, or a job already finished) makes no span. A job stored without a context (its API did not
trace) is a root in its own Conveyor trace.

A batch item is a trace of its own: each run of it is a root span whose trace id is the item's Conveyor
trace (app/observability/ids.py), so its runs land together, with a span link to the request span that
submitted the batch (`batches.trace_context`). Links, not children: 100,000 items as children would be
one trace of some 300,000 spans, which Tempo refuses (its 5 MB per-trace limit drops the rest) and
Jaeger's UI cannot draw, while an item's own trace stays small and its link shows as a reference
(Jaeger) or span link (Grafana Tempo) to the batch's request, as the messaging conventions link each
processed message to where it was created. Every item span also carries `conveyor.batch.id`, so an
attribute search lists a batch's items.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode

from app.observability import otel
from app.observability.genai import GenAiAttempts, captures_content
from app.observability.ids import ChosenTraceIds, otel_id, trace_id_of
from app.observability.tracing import WORKER_SERVICE, Job, TracedJob

T = TypeVar("T")

BATCH_ANSWER = "conveyor.batch_answer"  # a batch item carried on from its provider-batch answer


class JobRun:
    """One run of a job, from its message's arrival; its span exists once the job is claimed."""

    __slots__ = ("name", "received_ns", "attributes", "span", "token")

    def __init__(self, name: str, attributes: dict[str, Any]) -> None:
        self.name = name
        self.received_ns = time.time_ns()
        self.attributes = attributes
        self.span: Span | None = None
        self.token: object | None = None  # the OTel context attached while the job runs


# The run of the job whose coroutine is running (set by `WorkerTracer.run_job` around it).
_current_run: ContextVar[JobRun | None] = ContextVar("conveyor_job_run", default=None)


def _context_of(carrier_json: str | None) -> trace.SpanContext | None:
    """The span context of stored propagation headers; None when there are none, or none valid."""
    if not carrier_json:
        return None
    try:
        carrier = json.loads(carrier_json)
    except ValueError:
        return None
    if not isinstance(carrier, dict):
        return None
    context = trace.get_current_span(propagate.extract(carrier)).get_span_context()
    return context if context.is_valid else None


class WorkerTracer:
    def __init__(self, provider: Any, capture_content: bool) -> None:
        self.provider = provider
        self.tracer = provider.get_tracer("conveyor.worker")
        self.observer = GenAiAttempts(self.tracer, capture_content=capture_content)

    @classmethod
    def start(cls, environ: Mapping[str, str]) -> WorkerTracer:
        provider = otel.tracer_provider(WORKER_SERVICE, environ, id_generator=ChosenTraceIds())
        return cls(provider, captures_content(environ))

    # --- a job run from a queue message -------------------------------------------------------------

    def run_job(self, task: str, headers: Mapping[str, Any], args: tuple[Any, ...], job: Job[T]) -> Job[T]:
        attributes: dict[str, Any] = {"messaging.operation.type": "process"}
        queue = (headers.get("delivery_info") or {}).get("routing_key") if isinstance(headers, Mapping) else None
        if queue:
            attributes["messaging.destination.name"] = queue
        return self._run(JobRun(task, attributes), job)

    async def _run(self, run: JobRun, job: Job[T]) -> T:
        # The job's coroutine runs on this very task: what `job_claimed` attaches there is this task's
        # context, which the job's engine call (a task it starts) inherits, and which is detached here.
        reset = _current_run.set(run)
        try:
            outcome = await job
        except BaseException as error:
            self._end_run(run, None, error)
            raise
        finally:
            _current_run.reset(reset)
        self._end_run(run, outcome, None)
        return outcome

    def job_claimed(self, job: TracedJob) -> None:
        run = _current_run.get()
        if run is None or run.span is not None:
            return
        run.span = self._start(run.name, SpanKind.CONSUMER, job, run.received_ns, run.attributes)
        run.token = otel_context.attach(trace.set_span_in_context(run.span))

    def job_deferred(self) -> None:
        run = _current_run.get()
        if run is not None and run.span is not None:
            run.span.set_attribute("conveyor.job.deferred", True)

    def _end_run(self, run: JobRun, outcome: Any, error: BaseException | None) -> None:
        if run.token is not None:
            otel_context.detach(run.token)  # type: ignore[arg-type]
            run.token = None
        if run.span is None:
            return
        _ended(run.span, getattr(outcome, "value", None), error)  # a JobStatus; None: not finished here

    # --- a batch item answered through a provider's batch API ---------------------------------------

    def batch_answer(self, job: TracedJob, answer: Job[T]) -> Job[T]:
        return self._answered(job, answer)

    async def _answered(self, job: TracedJob, answer: Job[T]) -> T:
        span = self._start(BATCH_ANSWER, SpanKind.INTERNAL, job, time.time_ns(), {})
        with trace.use_span(span, end_on_exit=False, record_exception=False, set_status_on_exception=False):
            try:
                finish = await answer
            except BaseException as error:
                _ended(span, None, error)
                raise
        status = getattr(finish, "status", None)  # a store Finish
        _ended(span, getattr(status, "value", None), None)
        return finish

    # --- shared --------------------------------------------------------------------------------------

    def _start(self, name: str, kind: SpanKind, job: TracedJob, start_ns: int, attributes: dict[str, Any]) -> Span:
        attributes = {**attributes, "conveyor.job.id": job.id}
        stored = _context_of(job.trace_context)
        links: list[Link] = []
        parent = otel_context.Context()  # a root, unless the job's own request is its parent
        if job.batch_id is not None:
            attributes["conveyor.batch.id"] = job.batch_id
            if stored is not None:
                links.append(Link(stored, {"conveyor.link": "batch"}))
        elif stored is not None:
            parent = trace.set_span_in_context(trace.NonRecordingSpan(stored))
        with trace_id_of(otel_id(job.trace_id, 32)):  # for a root: the job's Conveyor trace
            return self.tracer.start_span(
                name, context=parent, kind=kind, start_time=start_ns, attributes=attributes, links=links
            )

    def shutdown(self) -> None:
        self.provider.shutdown()


def _ended(span: Span, status: str | None, error: BaseException | None) -> None:
    if status is not None:
        span.set_attribute("conveyor.job.status", status)
    if status == "failed":
        span.set_status(Status(StatusCode.ERROR, "the job failed"))
    elif error is not None:
        span.set_attribute("error.type", type(error).__qualname__)
        span.set_status(Status(StatusCode.ERROR, str(error)[:200]))
    span.end()
