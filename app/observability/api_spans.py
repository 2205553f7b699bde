"""The API's request spans (kind SERVER), and the trace context they hand to the jobs they enqueue.

A request's span is started lazily, with the request's own start time: what trace it belongs to is
known only once the call has been read. In order of precedence:
1. `parent_span_id` (Opper's way to nest calls): the trace of that stored span, under it
   (`join_stored_trace`, from the call service);
2. a W3C `traceparent` header (or whatever `OTEL_PROPAGATORS` reads): the caller's trace;
3. otherwise the call's own Conveyor trace, so the OTel trace id equals the `trace_id` the spans
   API shows (a UUID's 32 hex digits).
Conveyor's ids are UUIDs: a trace id maps to its 32 hex digits, a span id to its first 16.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Mapping
from contextvars import ContextVar

from fastapi import FastAPI
from opentelemetry import propagate, trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.observability import otel
from app.observability.tracing import API_SERVICE, RequestTrace

# The trace id a span about to start must have (a root call's own Conveyor trace).
_chosen_trace_id: ContextVar[int | None] = ContextVar("conveyor_chosen_trace_id", default=None)


class ChosenTraceIds(RandomIdGenerator):
    """Random ids, except a root span's trace id when one was chosen for it."""

    def generate_trace_id(self) -> int:
        return _chosen_trace_id.get() or super().generate_trace_id()


def otel_id(conveyor_id: str, hex_digits: int) -> int:
    """A Conveyor id (a UUID; any other string is hashed) as an OTel trace (32) or span (16) id."""
    try:
        digits = uuid.UUID(conveyor_id).hex
    except ValueError:
        digits = hashlib.sha256(conveyor_id.encode()).hexdigest()
    return int(digits[:hex_digits], 16) or 1


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
            token = _chosen_trace_id.set(self.trace_id)
            try:
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
            finally:
                _chosen_trace_id.reset(token)
        return self.span

    def message_headers(self) -> dict[str, str]:
        carrier: dict[str, str] = {}
        propagate.inject(carrier, context=trace.set_span_in_context(self.started()))
        return carrier

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
