"""The Anthropic Messages API adapter. Structured output is a forced tool call whose input is the answer."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import aclosing
from typing import Any

from app.providers.anthropic_batches import AnthropicBatchAPI
from app.providers.base import Completion, CompletionRequest, Message, StreamEvent, TextDelta, Usage
from app.providers.http_adapter import HTTPAdapter
from app.providers.http_errors import stream_error_event, unreadable_body
from app.providers.wire import safe_schema_name, stream_ended_early

ANTHROPIC_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096  # Anthropic requires max_tokens; options may override it
TOOL_DESCRIPTION = "Return the answer in this structure"
# Anthropic rejects a conversation that does not open with a user turn.
OPENING_USER_TURN = "Begin."


class AnthropicProvider(HTTPAdapter):
    """`POST {base_url}/v1/messages` with `x-api-key` and a pinned `anthropic-version`."""

    path = "/v1/messages"

    @staticmethod
    def key_headers(api_key: str) -> dict[str, str]:
        headers = {"anthropic-version": ANTHROPIC_VERSION}
        if api_key:
            headers["x-api-key"] = api_key
        return headers

    async def stream(self, request: CompletionRequest) -> AsyncIterator[StreamEvent]:
        """Yield a TextDelta per text or tool-input JSON piece, then one Completion with the full text."""
        label, events = self._open_stream(request)
        text: list[str] = []
        tool_json: list[str] = []
        usage, stop_reason, message_id, model, done = Usage(), None, None, request.model, False
        async with aclosing(events):
            async for event in events:
                data = event.json(label)
                kind = data.get("type") or event.event
                if kind == "message_start":
                    message = data.get("message") or {}
                    message_id, model = message.get("id"), message.get("model") or model
                    usage = _merge_usage(usage, message.get("usage"))
                elif kind == "content_block_delta":
                    delta = data.get("delta") or {}
                    if delta.get("type") == "text_delta" and delta.get("text"):
                        text.append(delta["text"])
                        yield TextDelta(delta["text"])
                    elif delta.get("type") == "input_json_delta" and delta.get("partial_json"):
                        tool_json.append(delta["partial_json"])
                        yield TextDelta(delta["partial_json"])
                elif kind == "message_delta":
                    stop_reason = (data.get("delta") or {}).get("stop_reason") or stop_reason
                    usage = _merge_usage(usage, data.get("usage"))
                elif kind == "message_stop":
                    done = True
                    break
                elif kind == "error":
                    raise stream_error_event(label, data, secrets=self._secrets)
        if not done:
            raise stream_ended_early(label, "message_stop")
        answer = "".join(tool_json) if tool_json else "".join(text)
        yield Completion(answer, usage, model, stop_reason, message_id)

    def batch_api(self) -> AnthropicBatchAPI:
        """This endpoint's Message Batches API (app/providers/anthropic_batches.py), on the same client and key."""
        return AnthropicBatchAPI(self, self._client, self._api_key)

    def parse_message(self, payload: Mapping[str, Any], requested_model: str) -> Completion:
        """A Messages answer body (a provider batch's succeeded result) as a Completion."""
        return self.read_answer(payload, requested_model, f"{self.name}/{requested_model}")

    def build_body(self, request: CompletionRequest, *, stream: bool = False) -> dict[str, Any]:
        """The wire body: options first (temperature, max_tokens...), then what the request must control."""
        system, messages = to_anthropic_messages(request.messages)
        body: dict[str, Any] = dict(request.options)
        body.setdefault("max_tokens", DEFAULT_MAX_TOKENS)
        body["model"] = request.model
        body["messages"] = messages
        if system:
            body["system"] = system
        if request.json_schema is not None:
            tool_name = safe_schema_name(request.schema_name)
            body["tools"] = [
                {
                    "name": tool_name,
                    "description": TOOL_DESCRIPTION,
                    "input_schema": dict(request.json_schema),
                }
            ]
            body["tool_choice"] = {"type": "tool", "name": tool_name}
        if stream:
            body["stream"] = True
        return body

    @staticmethod
    def read_answer(payload: Mapping[str, Any], requested_model: str, label: str) -> Completion:
        """A Messages answer body as a Completion: the forced tool call's input as JSON text, else the text."""
        content = payload.get("content")
        if not isinstance(content, list):
            raise unreadable_body(label, 200, str(payload), "no content blocks")
        blocks = [block for block in content if isinstance(block, Mapping)]
        tool_inputs = [block.get("input") for block in blocks if block.get("type") == "tool_use"]
        if tool_inputs:
            text = json.dumps(tool_inputs[0])
        else:
            text = "".join(str(block.get("text") or "") for block in blocks if block.get("type") == "text")
        return Completion(
            text=text,
            usage=_merge_usage(Usage(), payload.get("usage")),
            model=str(payload.get("model") or requested_model),
            finish_reason=payload.get("stop_reason"),
            provider_request_id=payload.get("id"),
        )


def to_anthropic_messages(messages: Sequence[Message]) -> tuple[str, list[dict[str, str]]]:
    """System messages joined into one `system` string; the rest merged into alternating turns
    that open with a user turn, as the Messages API requires. The input is not modified."""
    system = "\n\n".join(m.content for m in messages if m.role == "system")
    turns: list[dict[str, str]] = []
    for message in messages:
        if message.role == "system":
            continue
        if turns and turns[-1]["role"] == message.role:
            turns[-1] = {"role": message.role, "content": f"{turns[-1]['content']}\n\n{message.content}"}
        else:
            turns.append({"role": message.role, "content": message.content})
    if not turns or turns[0]["role"] != "user":
        turns.insert(0, {"role": "user", "content": OPENING_USER_TURN})
    return system, turns


def _merge_usage(usage: Usage, reported: Any) -> Usage:
    """Anthropic reports input tokens at message_start and cumulative output tokens at message_delta."""
    if not isinstance(reported, Mapping):
        return usage
    return Usage(
        input_tokens=int(reported.get("input_tokens") or usage.input_tokens),
        output_tokens=int(reported.get("output_tokens") or usage.output_tokens),
    )
