"""The OpenAI chat-completions adapter, for OpenAI itself and any compatible endpoint
(Ollama, vLLM, llama.cpp, Groq, Together, Azure-style gateways, the fake provider)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import aclosing
from typing import Any

from app.providers.base import Completion, CompletionRequest, StreamEvent, TextDelta, Usage
from app.providers.http_adapter import HTTPAdapter
from app.providers.http_errors import stream_error_event, unreadable_body
from app.providers.openai_batches import OpenAIBatchAPI
from app.providers.wire import safe_schema_name, stream_ended_early


class OpenAIProvider(HTTPAdapter):
    """`POST {base_url}/chat/completions`. `api_key` may be empty for local servers that need none."""

    path = "/chat/completions"

    @staticmethod
    def key_headers(api_key: str) -> dict[str, str]:
        return {"authorization": f"Bearer {api_key}"} if api_key else {}

    async def stream(self, request: CompletionRequest) -> AsyncIterator[StreamEvent]:
        """Yield a TextDelta per content delta, then one Completion with the full text and usage."""
        label, events = self._open_stream(request)
        parts: list[str] = []
        usage, finish_reason, request_id, model, done = Usage(), None, None, request.model, False
        async with aclosing(events):
            async for event in events:
                if event.data.strip() == "[DONE]":
                    done = True
                    break
                chunk = event.json(label)
                if chunk.get("error"):
                    raise stream_error_event(label, chunk, secrets=self._secrets)
                request_id = request_id or chunk.get("id")
                model = chunk.get("model") or model
                for choice in chunk.get("choices") or ():
                    piece = (choice.get("delta") or {}).get("content")
                    if piece:
                        parts.append(piece)
                        yield TextDelta(piece)
                    finish_reason = choice.get("finish_reason") or finish_reason
                if isinstance(chunk.get("usage"), Mapping):  # the last chunk, thanks to include_usage
                    usage = _parse_usage(chunk["usage"])
        if not done:
            raise stream_ended_early(label, "data: [DONE]")
        yield Completion("".join(parts), usage, model, finish_reason, request_id)

    def batch_api(self) -> OpenAIBatchAPI:
        """This endpoint's Batch API (app/providers/openai_batches.py), on the same client and key."""
        return OpenAIBatchAPI(self, self._client, self._api_key)

    def parse_completion(self, payload: Mapping[str, Any], requested_model: str) -> Completion:
        """A chat-completions answer body (a provider batch's output line) as a Completion."""
        return self.read_answer(payload, requested_model, f"{self.name}/{requested_model}")

    def build_body(self, request: CompletionRequest, *, stream: bool = False) -> dict[str, Any]:
        """The wire body: options first, so they can never overwrite the model, messages or format."""
        body: dict[str, Any] = dict(request.options)
        body["model"] = request.model
        body["messages"] = [{"role": m.role, "content": m.content} for m in request.messages]
        if request.json_schema is not None:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {
                    "name": safe_schema_name(request.schema_name),
                    "schema": dict(request.json_schema),
                    # strict mode rejects common schemas (optional fields, formats); we validate anyway.
                    "strict": False,
                },
            }
        elif request.json_mode:
            body["response_format"] = {"type": "json_object"}
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return body

    @staticmethod
    def read_answer(payload: Mapping[str, Any], requested_model: str, label: str) -> Completion:
        """A chat-completions answer body as a Completion (its first choice)."""
        choices = payload.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], Mapping):
            raise unreadable_body(label, 200, str(payload), "no choices")
        message = choices[0].get("message")
        if not isinstance(message, Mapping):
            raise unreadable_body(label, 200, str(payload), "no message in choices[0]")
        # `content` is null when the model refuses; the refusal text then stands in for the answer.
        text = message.get("content") or message.get("refusal") or ""
        usage = payload.get("usage")
        return Completion(
            text=str(text),
            usage=_parse_usage(usage) if isinstance(usage, Mapping) else Usage(),
            model=str(payload.get("model") or requested_model),
            finish_reason=choices[0].get("finish_reason"),
            provider_request_id=payload.get("id"),
        )


def _parse_usage(usage: Mapping[str, Any]) -> Usage:
    details = usage.get("completion_tokens_details") or {}
    return Usage(
        input_tokens=int(usage.get("prompt_tokens") or 0),
        output_tokens=int(usage.get("completion_tokens") or 0),
        reasoning_tokens=int(details.get("reasoning_tokens") or 0),
    )
