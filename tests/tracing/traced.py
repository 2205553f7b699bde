"""Helpers of the tracing tests: a stack that exports to a receiver, calls, and the spans of one call."""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Iterator

from tests.stack import Stack, start_stack
from tests.tracing.receiver import Collected, ReceivedSpan

SCHEMA = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}


@contextlib.contextmanager
def traced_stack(fake_provider_url: str, otel_env: dict[str, str], **settings: str) -> Iterator[Stack]:
    """A stack whose API (in this process) and worker (a child) export to the receiver in `otel_env`.

    The API reads the OTel variables from this process's environment when its app is created, so
    they are set around `start_stack` (and only then: later stacks in this process see none)."""
    env = {"OTEL_BSP_SCHEDULE_DELAY": "50", **otel_env}
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        stack = start_stack(fake_provider_url, **env, **settings)
    finally:
        for name, value in saved.items():
            os.environ.pop(name, None) if value is None else os.environ.__setitem__(name, value)
    try:
        yield stack
    finally:
        stack.stop()


def call(client, model, *, headers=None, **extra):  # noqa: ANN001, ANN201
    body = {"name": "traced", "input": f"question {uuid.uuid4().hex[:6]}", "output_schema": SCHEMA, "model": model}
    response = client.post("/call", json={**body, **extra}, headers=headers or {})
    assert response.status_code == 200, response.text
    return response.json()


KINDS = ("server", "consumer", "client", "internal")


def spans_by_kind(collected: Collected, trace_id: str, **counts: int) -> dict[str, list[ReceivedSpan]]:
    """Trace `trace_id`'s spans by kind, once it has exactly `counts[kind]` of each kind named."""

    def found(spans: list[ReceivedSpan]) -> dict[str, list[ReceivedSpan]] | None:
        mine = [span for span in spans if span.trace_id == trace_id]
        kinds = {kind: [span for span in mine if span.kind == kind] for kind in KINDS}
        return kinds if all(len(kinds[kind]) == count for kind, count in counts.items()) else None

    return collected.wait_for(found)


def whole_call(collected: Collected, trace_id: str, attempts: int) -> dict[str, list[ReceivedSpan]]:
    """A call's API span, job span and `attempts` chat spans, once all are in trace `trace_id`."""
    return spans_by_kind(collected, trace_id, server=1, consumer=1, client=attempts)


def conveyor_trace_id(client, span_id: str) -> str:  # noqa: ANN001
    response = client.get(f"/spans/{span_id}")
    assert response.status_code == 200, response.text
    return uuid.UUID(response.json()["trace_id"]).hex


def stored_context(span: ReceivedSpan) -> str:
    """A span's context as Conveyor stores a submitting request's (`jobs.trace_context`)."""
    return json.dumps({"traceparent": f"00-{span.trace_id}-{span.span_id}-01"}, separators=(",", ":"))
