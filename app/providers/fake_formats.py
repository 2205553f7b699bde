"""The two wire formats the fake provider speaks: reading a request, and shaping answers, errors
and stream events the way OpenAI chat completions and Anthropic messages do; and OpenAI embeddings."""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from app.providers.fake_script import FakeAnswer, FakePrompt


@dataclass(frozen=True)
class FakeReply:
    """Everything one answer needs, shared by its body or by each of its stream events."""

    id: str
    model: str  # the base model name, as real providers echo a model id without our directives
    prompt: FakePrompt
    answer: FakeAnswer
    created: int = field(default_factory=lambda: int(time.time()))


def _text(content: Any) -> str:
    """Message content as text: a string, or a list of `{"type": "text", "text": ...}` parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text") or "") for p in content if isinstance(p, Mapping))
    return "" if content is None else json.dumps(content)


def _sse(data: Mapping[str, Any], event: str | None = None) -> str:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data)}\n\n"


class OpenAIFormat:
    path = "/v1/chat/completions"

    @staticmethod
    def new_id() -> str:
        return f"chatcmpl-{uuid.uuid4().hex[:24]}"

    @staticmethod
    def parse(body: Mapping[str, Any]) -> FakePrompt:
        messages = tuple((str(m["role"]), _text(m.get("content"))) for m in body.get("messages") or ())
        response_format = body.get("response_format") or {}
        schema = None
        if response_format.get("type") == "json_schema":
            schema = (response_format.get("json_schema") or {}).get("schema") or {}
        return FakePrompt(
            model=str(body["model"]),
            messages=messages,
            schema=schema,
            json_mode=response_format.get("type") == "json_object",
            stream=bool(body.get("stream")),
        )

    @staticmethod
    def error_body(status: int, message: str) -> dict[str, Any]:
        kind = "server_error" if status >= 500 else "rate_limit_exceeded" if status == 429 else "invalid_request_error"
        return {"error": {"message": message, "type": kind, "param": None, "code": str(status)}}

    @staticmethod
    def retry_headers(seconds: float) -> dict[str, str]:
        return {"retry-after": f"{seconds:g}", "retry-after-ms": str(round(seconds * 1000))}

    @staticmethod
    def _usage(answer: FakeAnswer) -> dict[str, Any]:
        return {
            "prompt_tokens": answer.input_tokens,
            "completion_tokens": answer.output_tokens,
            "total_tokens": answer.input_tokens + answer.output_tokens,
            "completion_tokens_details": {"reasoning_tokens": answer.reasoning_tokens},
        }

    @staticmethod
    def _chunk(reply: FakeReply, choices: list[dict[str, Any]], **extra: Any) -> str:
        head = {
            "id": reply.id,
            "object": "chat.completion.chunk",
            "created": reply.created,
            "model": reply.model,
        }
        return _sse({**head, "system_fingerprint": "fp_fake", "choices": choices, **extra})

    def body(self, reply: FakeReply) -> dict[str, Any]:
        message = {"role": "assistant", "content": reply.answer.text, "refusal": None}
        return {
            "id": reply.id,
            "object": "chat.completion",
            "created": reply.created,
            "model": reply.model,
            "system_fingerprint": "fp_fake",
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}],
            "usage": self._usage(reply.answer),
        }

    def stream_open(self, reply: FakeReply) -> list[str]:
        delta = {"role": "assistant", "content": ""}
        return [self._chunk(reply, [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}])]

    def stream_delta(self, reply: FakeReply, piece: str) -> str:
        return self._chunk(reply, [{"index": 0, "delta": {"content": piece}, "logprobs": None, "finish_reason": None}])

    def stream_close(self, reply: FakeReply) -> list[str]:
        finish = self._chunk(reply, [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}])
        # Usage rides on a last chunk with no choices, as OpenAI sends it under include_usage.
        usage = self._chunk(reply, [], usage=self._usage(reply.answer))
        return [finish, usage, "data: [DONE]\n\n"]

    def stream_error(self, status: int, message: str) -> str:
        return _sse(self.error_body(status, message))


_ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}


class AnthropicFormat:
    path = "/v1/messages"

    @staticmethod
    def new_id() -> str:
        return f"msg_{uuid.uuid4().hex[:24]}"

    @staticmethod
    def parse(body: Mapping[str, Any]) -> FakePrompt:
        system = _text(body.get("system"))
        turns = tuple((str(m["role"]), _text(m.get("content"))) for m in body.get("messages") or ())
        choice = body.get("tool_choice") or {}
        tools = [t for t in body.get("tools") or () if isinstance(t, Mapping)]
        forced = None
        if choice.get("type") == "tool":
            forced = next((t for t in tools if t.get("name") == choice.get("name")), None)
        elif choice.get("type") == "any" and tools:
            forced = tools[0]
        return FakePrompt(
            model=str(body["model"]),
            messages=((("system", system),) if system else ()) + turns,
            schema=dict(forced.get("input_schema") or {}) if forced else None,
            stream=bool(body.get("stream")),
            tool_name=str(forced["name"]) if forced else None,
        )

    @staticmethod
    def error_body(status: int, message: str) -> dict[str, Any]:
        kind = _ANTHROPIC_ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
        return {"type": "error", "error": {"type": kind, "message": message}}

    @staticmethod
    def retry_headers(seconds: float) -> dict[str, str]:
        return {"retry-after": f"{seconds:g}"}

    @staticmethod
    def _uses_tool(reply: FakeReply) -> bool:
        return reply.prompt.tool_name is not None and reply.answer.tool_input is not None

    def _block(self, reply: FakeReply, *, streaming: bool) -> dict[str, Any]:
        if self._uses_tool(reply):
            tool_input = {} if streaming else reply.answer.tool_input
            tool_id = f"toolu_{reply.id[4:]}"
            return {"type": "tool_use", "id": tool_id, "name": reply.prompt.tool_name, "input": tool_input}
        return {"type": "text", "text": "" if streaming else reply.answer.text}

    def _stop_reason(self, reply: FakeReply) -> str:
        return "tool_use" if self._uses_tool(reply) else "end_turn"

    def body(self, reply: FakeReply) -> dict[str, Any]:
        return {
            "id": reply.id,
            "type": "message",
            "role": "assistant",
            "model": reply.model,
            "content": [self._block(reply, streaming=False)],
            "stop_reason": self._stop_reason(reply),
            "stop_sequence": None,
            "usage": {"input_tokens": reply.answer.input_tokens, "output_tokens": reply.answer.output_tokens},
        }

    def stream_open(self, reply: FakeReply) -> list[str]:
        message = {**self.body(reply), "content": [], "stop_reason": None}
        message["usage"] = {"input_tokens": reply.answer.input_tokens, "output_tokens": 1}
        block = {
            "type": "content_block_start",
            "index": 0,
            "content_block": self._block(reply, streaming=True),
        }
        return [
            _sse({"type": "message_start", "message": message}, "message_start"),
            _sse(block, "content_block_start"),
            _sse({"type": "ping"}, "ping"),
        ]

    def stream_delta(self, reply: FakeReply, piece: str) -> str:
        if self._uses_tool(reply):
            delta = {"type": "input_json_delta", "partial_json": piece}
        else:
            delta = {"type": "text_delta", "text": piece}
        return _sse({"type": "content_block_delta", "index": 0, "delta": delta}, "content_block_delta")

    def stream_close(self, reply: FakeReply) -> list[str]:
        delta = {"stop_reason": self._stop_reason(reply), "stop_sequence": None}
        return [
            _sse({"type": "content_block_stop", "index": 0}, "content_block_stop"),
            _sse(
                {
                    "type": "message_delta",
                    "delta": delta,
                    "usage": {"output_tokens": reply.answer.output_tokens},
                },
                "message_delta",
            ),
            _sse({"type": "message_stop"}, "message_stop"),
        ]

    def stream_error(self, status: int, message: str) -> str:
        return _sse(self.error_body(status, message), "error")


WireFormat = OpenAIFormat | AnthropicFormat


# --- embeddings -----------------------------------------------------------------------------------

EMBEDDING_DIMENSIONS = 256
_EMBEDDING_WORDS = re.compile(r"[^\W_]+")
# Function words would make every English sentence look alike; real embeddings weigh them little too.
_EMBEDDING_STOP_WORDS = frozenset(
    ("a", "an", "and", "are", "as", "at", "be", "by", "do", "does", "for", "from", "how", "i", "in", "is", "it")
    + ("its", "my", "of", "on", "or", "the", "this", "to", "was", "what", "with", "you")
)


def hashed_embedding(text: str, dimensions: int = EMBEDDING_DIMENSIONS) -> list[float]:
    """A deterministic bag-of-words vector: each word (but common function words) adds ±1 to a slot
    picked by its hash, then the vector is L2-normalised. Texts that share words point the same way,
    so cosine similarity ranks lexical overlap, which is enough for tests to show relevance ranking."""
    vector = [0.0] * dimensions
    for word in _EMBEDDING_WORDS.findall(text.lower()):
        if word in _EMBEDDING_STOP_WORDS:
            continue
        digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
        vector[int.from_bytes(digest[:4], "big") % dimensions] += 1.0 if digest[4] & 1 else -1.0
    norm = math.sqrt(sum(x * x for x in vector))
    if not norm:  # no words: a fixed unit vector rather than zeros, which have no direction
        return [1.0] + [0.0] * (dimensions - 1)
    return [x / norm for x in vector]


@dataclass(frozen=True)
class EmbeddingAsk:
    model: str
    texts: tuple[str, ...]
    dimensions: int


class EmbeddingsFormat:
    """`POST /v1/embeddings`, as OpenAI answers it (float vectors only)."""

    path = "/v1/embeddings"

    @staticmethod
    def parse(body: Mapping[str, Any]) -> EmbeddingAsk:
        raw = body["input"]
        texts = (raw,) if isinstance(raw, str) else tuple(raw)
        if not texts or not all(isinstance(t, str) for t in texts):
            raise ValueError("input must be a string or a non-empty list of strings")
        dimensions = int(body.get("dimensions") or EMBEDDING_DIMENSIONS)
        if not 1 <= dimensions <= 4096:
            raise ValueError("dimensions must be from 1 to 4096")
        return EmbeddingAsk(model=str(body["model"]), texts=texts, dimensions=dimensions)

    @staticmethod
    def body(ask: EmbeddingAsk, model: str) -> dict[str, Any]:
        tokens = sum(len(_EMBEDDING_WORDS.findall(t)) for t in ask.texts)
        data = [
            {"object": "embedding", "index": i, "embedding": hashed_embedding(t, ask.dimensions)}
            for i, t in enumerate(ask.texts)
        ]
        return {
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
