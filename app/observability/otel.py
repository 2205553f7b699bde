"""The OpenTelemetry SDK set up from the standard environment variables: imported only when tracing is on.

Each process role gets a `TracerProvider` of its own (not OTel's global one, so that an API and a
worker in one test process, or two apps in a row, never fight over it), batching spans to an OTLP
exporter. What the SDK and the exporters read themselves from the environment applies as
documented by OpenTelemetry: `OTEL_EXPORTER_OTLP[_TRACES]_ENDPOINT`, `_HEADERS`, `_TIMEOUT`,
`_COMPRESSION`, `_CERTIFICATE`, `OTEL_TRACES_SAMPLER[_ARG]`, `OTEL_RESOURCE_ATTRIBUTES`,
`OTEL_SERVICE_NAME`, `OTEL_BSP_*`, `OTEL_PROPAGATORS`. Chosen here: the protocol
(`OTEL_EXPORTER_OTLP[_TRACES]_PROTOCOL`: `http/protobuf`, the spec's default, or `grpc`), and
`service.name` (`conveyor-api` / `conveyor-worker` unless the environment names one).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator

log = logging.getLogger("conveyor.tracing")

GRPC = "grpc"
HTTP_PROTOBUF = "http/protobuf"


def protocol(environ: Mapping[str, str]) -> str:
    chosen = (
        environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") or HTTP_PROTOBUF
    ).strip()
    if chosen not in (GRPC, HTTP_PROTOBUF):
        log.warning("OTLP protocol %r is not supported here; exporting over %s", chosen, HTTP_PROTOBUF)
        return HTTP_PROTOBUF
    return chosen


def exporter(environ: Mapping[str, str]) -> SpanExporter:
    """The OTLP span exporter for the configured protocol; it reads its endpoint, headers and TLS files itself."""
    if protocol(environ) == GRPC:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

        return GrpcExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

    return HttpExporter()


def resource(default_service: str, environ: Mapping[str, str]) -> Resource:
    """`service.name` tells the API from the workers, unless the environment names the service."""
    named = environ.get("OTEL_SERVICE_NAME") or "service.name=" in environ.get("OTEL_RESOURCE_ATTRIBUTES", "")
    return Resource.create({} if named else {SERVICE_NAME: default_service})


def tracer_provider(
    default_service: str, environ: Mapping[str, str], id_generator: IdGenerator | None = None
) -> TracerProvider:
    """A provider exporting in batches; it flushes at process exit (the SDK's atexit hook) or `shutdown()`."""
    provider = TracerProvider(resource=resource(default_service, environ), id_generator=id_generator)
    provider.add_span_processor(BatchSpanProcessor(exporter(environ)))
    return provider
