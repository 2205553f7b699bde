"""`chat {model}` spans for model attempts, after the OpenTelemetry GenAI semantic conventions.

Each span is made when its attempt has ended, from the engine's record of it (app/engine/observer.py),
with the attempt's real start and end times, under the span current in the call's context (the job's).
Prompt and answer text go in only with `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true`
(`gen_ai.system_instructions`, `gen_ai.input.messages`, `gen_ai.output.messages`, as JSON). An attempt
a provider's batch API answered says so (`conveyor.provider_batch`): its times are when the answer was
read.

A call answered from Conveyor's result cache asks no model, so it gets no `chat` span: the conventions'
inference span is "a client call to a GenAI model", and their only cache attributes
(`gen_ai.usage.cache_read.input_tokens`, ...) count a provider's prompt cache. Backends that chart
GenAI calls from `chat` spans (latency, tokens per model) would count a hit as a free, instant call.
It gets an INTERNAL `cached chat {model}` span instead, with `conveyor.cache.hit=true` and the model
whose answer was served, for the length of the cache lookup, and no `gen_ai.*` attributes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer

from app.engine.observer import CacheHit, ObservedAttempt

CAPTURE_CONTENT = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
# Conveyor's provider prefixes that the conventions spell differently; any other is used as it is.
PROVIDER_NAMES = {
    "azure": "azure.ai.openai",
    "bedrock": "aws.bedrock",
    "gemini": "gcp.gemini",
    "google": "gcp.gemini",
    "vertex": "gcp.vertex_ai",
    "mistral": "mistral_ai",
    "xai": "x_ai",
}
# Request options with a convention attribute of their own.
OPTION_ATTRIBUTES = {
    "temperature": "gen_ai.request.temperature",
    "max_tokens": "gen_ai.request.max_tokens",
    "top_p": "gen_ai.request.top_p",
    "seed": "gen_ai.request.seed",
}


def captures_content(environ: Mapping[str, str]) -> bool:
    return environ.get(CAPTURE_CONTENT, "").strip().lower() == "true"


def _ns(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000_000)


class GenAiAttempts:
    """The engine's `AttemptObserver` in a tracing worker: one CLIENT span per attempt."""

    def __init__(self, tracer: Tracer, *, capture_content: bool) -> None:
        self.tracer = tracer
        self.capture_content = capture_content

    def attempt_ended(self, attempt: ObservedAttempt) -> None:
        record, request = attempt.record, attempt.request
        span = self.tracer.start_span(
            f"chat {request.model}",
            kind=SpanKind.CLIENT,
            start_time=_ns(record.started_at),
            attributes=self._attributes(attempt),
        )
        if not record.succeeded:
            span.set_attribute("error.type", record.error_type or "_OTHER")
            span.set_status(Status(StatusCode.ERROR, (record.error_message or "")[:500]))
        span.end(end_time=max(_ns(record.ended_at), _ns(record.started_at)))

    def answered_from_cache(self, hit: CacheHit) -> None:
        model = hit.model.partition("/")[2] or hit.model  # as the provider names it, like `chat {model}`
        span = self.tracer.start_span(
            f"cached chat {model}",
            kind=SpanKind.INTERNAL,
            start_time=_ns(hit.started_at),
            attributes={"conveyor.cache.hit": True, "conveyor.model": hit.model},
        )
        span.end(end_time=max(_ns(hit.ended_at), _ns(hit.started_at)))

    def _attributes(self, attempt: ObservedAttempt) -> dict[str, Any]:
        record, request, completion = attempt.record, attempt.request, attempt.completion
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": PROVIDER_NAMES.get(attempt.provider, attempt.provider),
            "gen_ai.request.model": request.model,
            "conveyor.model": record.model,
            "conveyor.attempt": record.attempt,
        }
        if attempt.from_provider_batch:
            attributes["conveyor.provider_batch"] = True
        for option, name in OPTION_ATTRIBUTES.items():
            value = request.options.get(option)
            if isinstance(value, int | float) and not isinstance(value, bool):
                attributes[name] = value
        if request.json_schema is not None or request.json_mode:
            attributes["gen_ai.output.type"] = "json"
        if completion is not None:
            attributes["gen_ai.response.model"] = completion.model
            attributes["gen_ai.usage.input_tokens"] = record.usage.input_tokens
            attributes["gen_ai.usage.output_tokens"] = record.usage.output_tokens
            if completion.finish_reason:
                attributes["gen_ai.response.finish_reasons"] = [completion.finish_reason]
            if completion.provider_request_id:
                attributes["gen_ai.response.id"] = completion.provider_request_id
        if self.capture_content:
            attributes.update(_content(attempt))
        return attributes


def _content(attempt: ObservedAttempt) -> dict[str, str]:
    messages = attempt.request.messages
    system = [{"type": "text", "content": m.content} for m in messages if m.role == "system"]
    conversation = [
        {"role": m.role, "parts": [{"type": "text", "content": m.content}]} for m in messages if m.role != "system"
    ]
    content = {"gen_ai.input.messages": json.dumps(conversation, ensure_ascii=False)}
    if system:
        content["gen_ai.system_instructions"] = json.dumps(system, ensure_ascii=False)
    answer = attempt.completion.text if attempt.completion is not None else attempt.record.output_text
    if answer is not None:
        output: dict[str, Any] = {"role": "assistant", "parts": [{"type": "text", "content": answer}]}
        if attempt.completion is not None and attempt.completion.finish_reason:
            output["finish_reason"] = attempt.completion.finish_reason
        content["gen_ai.output.messages"] = json.dumps([output], ensure_ascii=False)
    return content
