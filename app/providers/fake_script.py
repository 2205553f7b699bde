"""What the fake provider answers: directives read from the model name, and the answer they script.

A model name such as `gpt-4o-mini?latency_ms=2000&fail=503&invalid_json=first` is a base model
plus a query string of directives (see `FakeScript`). Everything here is format-neutral: the
OpenAI and Anthropic shapes live in `fake_formats`.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, fields
from typing import Any, Literal
from urllib.parse import parse_qsl

from app.providers.fake_schema import generate_value, violate

When = Literal["first", "always"]
_FENCED_JSON = re.compile(r"```json[ \t]*\n(.*?)```", re.DOTALL)
INVALID_JSON_PREFIX = "Sure! Here is the JSON you asked for:\n"


class ScriptError(ValueError):
    """A directive the fake does not understand; answered as a 400 so typos surface at once."""


@dataclass(frozen=True)
class FakeScript:
    """The directives after `?` in a model name. Durations in milliseconds, retry_after in seconds."""

    model: str  # the base model name, before `?`
    latency_ms: float = 0.0  # before answering; a stream spreads it over its chunks
    ttft_ms: float | None = None  # streams: time to the first delta
    fail: int | None = None  # answer this HTTP status with a provider-shaped error body
    fail_times: int | None = None  # only the first K requests for this exact model string fail
    retry_after: float | None = None  # Retry-After on a failure (429s default to 1)
    invalid_json: When | None = None  # "first" = a request whose messages hold no assistant turn yet
    schema_violation: When | None = None  # valid JSON that fails the schema
    reasoning_tokens: int = 0  # reported in usage (and counted in the output tokens, as providers do)
    stream_fail_after: int | None = None  # stream N deltas, then fail
    stream_fail_mode: Literal["drop", "error"] = "drop"  # drop the connection, or send an error event
    garbled: bool = False  # a 200 whose body is an HTML error page, as a misbehaving proxy sends
    batch_ms: float | None = None  # batch API: the batch finishes no sooner than this after creation
    batch_expire: bool = False  # batch API: this line is not answered in time (the batch expires)
    run: str = ""  # a free label: makes the model string unique, so per-name counters start afresh

    @classmethod
    def parse(cls, model_string: str) -> FakeScript:
        base, _, query = model_string.partition("?")
        known = {f.name: f for f in fields(cls) if f.name != "model"}
        values: dict[str, Any] = {}
        for key, raw in parse_qsl(query, keep_blank_values=True):
            if key not in known:
                raise ScriptError(f"unknown fake-provider directive {key!r}; known: {', '.join(known)}")
            values[key] = _convert(key, raw)
        if values.get("fail_times") is not None and values.get("fail") is None:
            values["fail"] = 503
        return cls(model=base, **values)

    def failure_status(self, attempt: int) -> int | None:
        """The status to fail with on this `attempt` (requests for this exact model string, from 1)."""
        if self.fail is None or (self.fail_times is not None and attempt > self.fail_times):
            return None
        return self.fail


def _convert(key: str, raw: str) -> Any:
    try:
        if key in ("invalid_json", "schema_violation"):
            if raw not in ("first", "always"):
                raise ValueError("expected first or always")
            return raw
        if key in ("garbled", "batch_expire"):
            if raw.lower() not in ("", "1", "true", "0", "false"):
                raise ValueError("expected 1 or 0")
            return raw.lower() in ("", "1", "true")
        if key == "run":
            return raw
        if key == "stream_fail_mode":
            if raw not in ("drop", "error"):
                raise ValueError("expected drop or error")
            return raw
        number = float(raw) if key in ("latency_ms", "ttft_ms", "retry_after", "batch_ms") else int(raw)
        if number < 0 or (key == "fail" and not 400 <= number <= 599):
            raise ValueError("out of range")
        return number
    except ValueError as exc:
        raise ScriptError(f"bad value for fake-provider directive {key}={raw!r}: {exc}") from exc


@dataclass(frozen=True)
class FakePrompt:
    """A request as the fake understands it, whichever wire format it came in."""

    model: str  # the full model string, directives included
    messages: tuple[tuple[str, str], ...]  # (role, text), system turns included
    schema: dict[str, Any] | None = None  # native structured output (json_schema / forced tool)
    json_mode: bool = False
    stream: bool = False
    tool_name: str | None = None  # Anthropic: the forced tool to answer with


@dataclass(frozen=True)
class FakeAnswer:
    text: str  # what the model "said": JSON text in JSON modes
    tool_input: dict[str, Any] | None  # the forced tool's input, when the answer can be one
    input_tokens: int
    output_tokens: int  # reasoning tokens included
    reasoning_tokens: int


def plan_answer(prompt: FakePrompt, script: FakeScript) -> FakeAnswer:
    """The scripted answer, deterministic in the messages so a re-run gets the same text."""
    first_attempt = not any(role == "assistant" for role, _ in prompt.messages)
    schema = prompt.schema if prompt.schema is not None else fenced_schema(prompt.messages)
    value: Any = None
    if schema is not None:
        value = generate_value(schema, seed_for(prompt.messages))
        if _applies(script.schema_violation, first_attempt):
            value = violate(schema, value)
        text = json.dumps(value)
    elif prompt.json_mode:
        value = {"answer": plain_answer(prompt.messages)}
        text = json.dumps(value)
    else:
        text = plain_answer(prompt.messages)
    if value is not None and _applies(script.invalid_json, first_attempt):
        text, value = INVALID_JSON_PREFIX + text[:-1], None  # prose, and the JSON cut short
    input_chars = sum(len(content) for _, content in prompt.messages)
    return FakeAnswer(
        text=text,
        tool_input=value if isinstance(value, dict) else None,
        input_tokens=max(1, input_chars // 4),
        output_tokens=max(1, len(text) // 4) + script.reasoning_tokens,
        reasoning_tokens=script.reasoning_tokens,
    )


def fenced_schema(messages: tuple[tuple[str, str], ...]) -> dict[str, Any] | None:
    """The first ```json block in a system or user turn that reads as a JSON Schema."""
    for role, content in messages:
        if role not in ("system", "user"):
            continue
        for block in _FENCED_JSON.findall(content):
            try:
                candidate = json.loads(block)
            except ValueError:
                continue
            if isinstance(candidate, dict) and ("properties" in candidate or "type" in candidate):
                return candidate
    return None


def plain_answer(messages: tuple[tuple[str, str], ...]) -> str:
    last_user = next((content for role, content in reversed(messages) if role == "user"), "")
    excerpt = " ".join(last_user.split())
    excerpt = excerpt if len(excerpt) <= 80 else excerpt[:79] + "…"
    return f"[simulated] {excerpt or '(no user message)'}"


def seed_for(messages: tuple[tuple[str, str], ...]) -> int:
    digest = hashlib.sha256(json.dumps(messages).encode()).digest()
    return int.from_bytes(digest[:8], "big")


def _applies(when: When | None, first_attempt: bool) -> bool:
    return when == "always" or (when == "first" and first_attempt)
