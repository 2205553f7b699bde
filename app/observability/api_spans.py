"""The API's request spans (kind SERVER), and the trace context they hand to the jobs and batches they submit.

A request's span is started lazily, with the request's own start time: what trace it belongs to is
known only once the call has been read. In order of precedence:
1. `parent_span_id` (Opper's way to nest calls): the trace of that stored span, under it
   (`join_stored_trace`, from the call service);
2. a W3C `traceparent` header (or whatever `OTEL_PROPAGATORS` reads): the caller's trace;
3. otherwise the call's own Conveyor trace, so the OTel trace id equals the `trace_id` the spans
   API shows (app/observability/ids.py).
The span's context is stored with the job it submits (or the batch), for the worker to trace every
run of the job under it (worker_spans.py).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from contextvars import ContextVar

from fastapi import FastAPI
from opentelemetry import propagate, trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.observability import otel
from app.observability.ids import ChosenTraceIds, otel_id, trace_id_of
from app.observability.tracing import API_SERVICE, RequestTrace


def route_template(scope: Scope) -> str | None:
    """The matched route's full template (`/v2/spans/{span_id}`). FastAPI puts the route itself in the
    scope, its path without the prefixes of the routers it was included through: those are the
    request path's leading segments, one segment a path parameter."""
    template = getattr(scope.get("route"), "path", None)
    if not template or ":path}" in template:
        return template
    segments = scope["path"].split("/")
    own = template.count("/")
    return "/".join(segments[: len(segments) - own]) + template


class RequestSpan:
    """One HTTP request's span, started on first need (a job message's headers, or the response)."""

    def __init__(self, tracer: trace.Tracer, scope: Scope) -> None:
        self.tracer = tracer
        self.scope = scope
        self.start_ns = time.time_ns()
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope.get("headers") or ()}
        self.parent = propagate.extract(headers)
        self.from_caller = trace.get_current_span(self.parent).get_span_context().is_valid
        self.trace_id: int | None = None
        self.span: trace.Span | None = None

    def join(self, trace_id: str, parent_span_id: str | None) -> None:
        if self.span is not None:
            return
        if parent_span_id is not None:
            context = SpanContext(
                trace_id=otel_id(trace_id, 32),
                span_id=otel_id(parent_span_id, 16),
                is_remote=True,
                trace_flags=TraceFlags(TraceFlags.SAMPLED),
            )
            self.parent = trace.set_span_in_context(NonRecordingSpan(context))
        elif not self.from_caller:
            self.trace_id = otel_id(trace_id, 32)

    def started(self) -> trace.Span:
        if self.span is None:
            with trace_id_of(self.trace_id):
                self.span = self.tracer.start_span(
                    self.scope["method"],  # `{method} {route}` once routed (HTTP conventions: no raw paths)
                    context=self.parent,
                    kind=SpanKind.SERVER,
                    start_time=self.start_ns,
                    attributes={
                        "http.request.method": self.scope["method"],
                        "url.path": self.scope["path"],
                        "url.scheme": self.scope.get("scheme", "http"),
                    },
                )
        return self.span

    def trace_context(self) -> str:
        """This span's context as propagation headers (`traceparent`, ...), in JSON, to store with a job."""
        carrier: dict[str, str] = {}
        propagate.inject(carrier, context=trace.set_span_in_context(self.started()))
        return json.dumps(carrier, separators=(",", ":"))

    def set_attribute(self, key: str, value: str) -> None:
        self.started().set_attribute(key, value)

    def end(self, status_code: int | None, error: BaseException | None) -> None:
        span = self.started()
        route = route_template(self.scope)
        if route:  # the name a trace view groups by: the route's template, not the ids in the path
            span.update_name(f"{self.scope['method']} {route}")
            span.set_attribute("http.route", route)
        if status_code is not None:
            span.set_attribute("http.response.status_code", status_code)
        if error is not None:
            span.set_attribute("error.type", type(error).__qualname__)
            span.set_status(Status(StatusCode.ERROR, str(error)[:200]))
        elif status_code is not None and status_code >= 500:
            span.set_attribute("error.type", str(status_code))
            span.set_status(Status(StatusCode.ERROR))
        span.end()


class RequestSpans:
    """ASGI middleware: a `RequestSpan` per HTTP request, reachable through `tracing`'s context variable."""

    def __init__(self, app: ASGIApp, provider: TracerProvider, current: ContextVar[RequestTrace | None]) -> None:
        self.app = app
        self.provider = provider
        self.tracer = provider.get_tracer("conveyor.api")
        self.current = current

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, self._flushing_at_shutdown(send))
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = RequestSpan(self.tracer, scope)
        status: list[int] = []

        async def send_noting_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
            await send(message)

        token = self.current.set(request)
        try:
            await self.app(scope, receive, send_noting_status)
        except BaseException as error:
            request.end(status[0] if status else None, error)
            raise
        finally:
            self.current.reset(token)
        request.end(status[0] if status else None, None)

    def _flushing_at_shutdown(self, send: Send) -> Send:
        async def send_after_flush(message: Message) -> None:
            if message["type"] == "lifespan.shutdown.complete":
                self.provider.shutdown()  # exports what is left, bounded by the exporter's timeout
            await send(message)

        return send_after_flush


def install(app: FastAPI, current: ContextVar[RequestTrace | None], environ: Mapping[str, str]) -> None:
    """As the outermost middleware (added last); its spans are flushed when the app shuts down."""
    provider = otel.tracer_provider(API_SERVICE, environ, id_generator=ChosenTraceIds())
    app.add_middleware(RequestSpans, provider=provider, current=current)
