"""A worker's spans: one per job (kind CONSUMER, a child of the `traceparent` its message carries), and
one per model attempt following the OpenTelemetry GenAI semantic conventions (genai.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from opentelemetry import propagate
from opentelemetry.trace import SpanKind, Status, StatusCode

from app.observability import otel
from app.observability.genai import GenAiAttempts, captures_content
from app.observability.tracing import WORKER_SERVICE, Job

T = TypeVar("T")


class WorkerTracer:
    def __init__(self, provider: Any, capture_content: bool) -> None:
        self.provider = provider
        self.tracer = provider.get_tracer("conveyor.worker")
        self.observer = GenAiAttempts(self.tracer, capture_content=capture_content)

    @classmethod
    def start(cls, environ: Mapping[str, str]) -> WorkerTracer:
        return cls(otel.tracer_provider(WORKER_SERVICE, environ), captures_content(environ))

    def run_job(self, task: str, headers: Mapping[str, Any], args: tuple[Any, ...], job: Job[T]) -> Job[T]:
        return self._in_job_span(task, headers or {}, args, job)

    async def _in_job_span(self, task: str, headers: Mapping[str, Any], args: tuple[Any, ...], job: Job[T]) -> T:
        attributes: dict[str, Any] = {"messaging.operation.type": "process"}
        if args and isinstance(args[0], str):
            attributes["conveyor.job.id"] = args[0]
        queue = (headers.get("delivery_info") or {}).get("routing_key") if isinstance(headers, Mapping) else None
        if queue:
            attributes["messaging.destination.name"] = queue
        # The attempt spans made while the job runs find this span as their parent in the task's context.
        with self.tracer.start_as_current_span(
            task, context=propagate.extract(headers), kind=SpanKind.CONSUMER, attributes=attributes
        ) as span:
            outcome = await job
            status = getattr(outcome, "value", None)  # a JobStatus; None: not run here (claimed elsewhere, deferred)
            if status is not None:
                span.set_attribute("conveyor.job.status", status)
            if status == "failed":
                span.set_status(Status(StatusCode.ERROR, "the job failed"))
            return outcome

    def shutdown(self) -> None:
        self.provider.shutdown()
