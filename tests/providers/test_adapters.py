"""The OpenAI and Anthropic adapters and the registry, against the fake provider as a real HTTP server."""

from __future__ import annotations

import asyncio
import json
import re
import socket
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from enum import StrEnum
from typing import Any, TypeVar
from uuid import UUID

import httpx
import pytest
from jsonschema import Draft202012Validator
from pydantic import BaseModel, Field

from app.config import Settings
from app.errors import (
    BadRequest,
    ProviderConnectionError,
    ProviderError,
    ProviderRateLimited,
    ProviderRejected,
    ProviderResponseError,
    ProviderServerError,
    ProviderTimeout,
)
from app.providers.anthropic import AnthropicProvider
from app.providers.base import Completion, CompletionRequest, Message, Provider, TextDelta
from app.providers.http_client import ProviderHTTPClient
from app.providers.http_errors import parse_retry_after, provider_error
from app.providers.openai import OpenAIProvider
from app.providers.registry import ProviderRegistry, provider_http_limits, provider_http_timeout
from tests.fakeprovider import FakeProviderServer

T = TypeVar("T")
API_KEY = "sk-test-not-a-real-key-1234"
ANSWER_PATTERN = r"^The answer to the question is [A-Za-z0-9\s]+$"
FORMATS = ["openai", "anthropic"]


class Color(StrEnum):
    red = "red"
    green = "green"
    blue = "blue"


class Address(BaseModel):
    street: str
    city: str
    postcode: str | None = None


class Answer(BaseModel):
    answer: str = Field(pattern=ANSWER_PATTERN)
    confidence: float = Field(ge=0, le=1)
    color: Color
    address: Address
    nickname: str | None = None
    tags: list[str] = Field(min_length=1, max_length=3)
    created: datetime
    id: UUID
    email: str = Field(json_schema_extra={"format": "email"})
    count: int = Field(gt=0, multiple_of=5)


SCHEMA = Answer.model_json_schema()  # pydantic v2: $defs, $ref, anyOf with null, enum, pattern
VALIDATOR = Draft202012Validator(SCHEMA, format_checker=Draft202012Validator.FORMAT_CHECKER)
QUESTION = (Message("system", "Answer the question."), Message("user", "What is the answer to everything?"))


@pytest.fixture(scope="module")
def fake() -> Any:
    with FakeProviderServer() as server:
        yield server


def make_provider(kind: str, url: str, client: ProviderHTTPClient) -> Provider:
    if kind == "openai":
        return OpenAIProvider("fake", f"{url}/v1", API_KEY, client)
    return AnthropicProvider("fake-anthropic", url, API_KEY, client)


def with_provider(kind: str, url: str, use: Callable[[Provider], Awaitable[T]], timeout: float = 10) -> T:
    """Run `use(provider)` on a fresh event loop and client (no pytest-asyncio here)."""

    async def go() -> T:
        async with ProviderHTTPClient(limits=httpx.Limits(), timeout=httpx.Timeout(timeout)) as client:
            return await use(make_provider(kind, url, client))

    return asyncio.run(go())


def complete(kind: str, url: str, request: CompletionRequest, timeout: float = 10) -> Completion:
    return with_provider(kind, url, lambda p: p.complete(request), timeout)


def stream(kind: str, url: str, request: CompletionRequest) -> tuple[list[Any], BaseException | None]:
    """Every event the stream yielded, and the exception that ended it, if any."""

    async def collect(provider: Provider) -> tuple[list[Any], BaseException | None]:
        events: list[Any] = []
        try:
            async for event in provider.stream(request):
                events.append(event)
        except ProviderError as exc:
            return events, exc
        return events, None

    return with_provider(kind, url, collect)


def expect_error(kind: str, url: str, model: str, cls: type[ProviderError], timeout: float = 10) -> ProviderError:
    with pytest.raises(cls) as info:
        complete(kind, url, CompletionRequest(model, QUESTION), timeout)
    return info.value


# --- plain text, structured output, pass-through ---------------------------------------------------


@pytest.mark.parametrize("kind", FORMATS)
def test_plain_text_echoes_the_question_with_usage(fake: FakeProviderServer, kind: str) -> None:
    result = complete(kind, fake.url, CompletionRequest("gpt-4o-mini", QUESTION))
    assert result.text == "[simulated] What is the answer to everything?"
    chars = sum(len(m.content) for m in QUESTION)
    assert result.usage.input_tokens == chars // 4
    assert result.usage.output_tokens == len(result.text) // 4
    assert result.model == "gpt-4o-mini"
    assert result.finish_reason == ("stop" if kind == "openai" else "end_turn")
    assert result.provider_request_id.startswith("chatcmpl-" if kind == "openai" else "msg_")


@pytest.mark.parametrize("kind", FORMATS)
def test_native_structured_output_is_valid_against_a_pydantic_schema(fake: FakeProviderServer, kind: str) -> None:
    request = CompletionRequest("gpt-4o-mini", QUESTION, json_schema=SCHEMA, schema_name="Answer")
    result = complete(kind, fake.url, request)
    value = json.loads(result.text)
    assert list(VALIDATOR.iter_errors(value)) == []
    assert re.fullmatch(ANSWER_PATTERN, value["answer"])
    assert value["color"] in {"red", "green", "blue"}
    assert value["nickname"] == "simulated Nickname"  # anyOf [string, null]: the non-null branch
    assert value["address"]["city"] == "simulated City"  # followed $ref into $defs
    assert value["count"] > 0 and value["count"] % 5 == 0
    assert 1 <= len(value["tags"]) <= 3
    Answer.model_validate(value)
    # deterministic: the same messages get the same answer
    assert complete(kind, fake.url, request).text == result.text
    if kind == "anthropic":
        assert result.finish_reason == "tool_use"


def test_openai_sends_options_headers_and_response_format(fake: FakeProviderServer) -> None:
    options = {"temperature": 0.2, "max_tokens": 64, "top_p": 0.9, "seed": 7}
    request = CompletionRequest(
        "gpt-4o-mini",
        QUESTION,
        options=options,
        extra_headers={"x-conveyor-trace": "trace-1"},
        json_schema=SCHEMA,
        schema_name="Answer v2/€",
    )
    result = complete("openai", fake.url, request)
    received = fake.received(result.provider_request_id)
    body = received["body"]
    assert received["path"] == "/v1/chat/completions"
    assert {k: body[k] for k in options} == options
    assert body["messages"] == [{"role": m.role, "content": m.content} for m in QUESTION]
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "Answer_v2__", "schema": SCHEMA, "strict": False},
    }
    assert received["headers"]["x-conveyor-trace"] == "trace-1"
    assert received["headers"]["authorization"] == "Bearer <redacted>"


def test_openai_json_mode_asks_for_a_json_object(fake: FakeProviderServer) -> None:
    result = complete("openai", fake.url, CompletionRequest("gpt-4o-mini", QUESTION, json_mode=True))
    assert fake.received(result.provider_request_id)["body"]["response_format"] == {"type": "json_object"}
    assert json.loads(result.text) == {"answer": "[simulated] What is the answer to everything?"}


def test_anthropic_body_system_alternation_tools_and_headers(fake: FakeProviderServer) -> None:
    messages = (
        Message("system", "Be brief."),
        Message("assistant", "Hello."),
        Message("system", "Use JSON."),
        Message("user", "Part one."),
        Message("user", "Part two."),
    )
    request = CompletionRequest(
        "claude-x", messages, options={"temperature": 0.5}, extra_headers={"x-trace": "t"}, json_schema=SCHEMA
    )
    result = complete("anthropic", fake.url, request)
    received = fake.received(result.provider_request_id)
    body = received["body"]
    assert body["system"] == "Be brief.\n\nUse JSON."
    assert body["messages"] == [
        {"role": "user", "content": "Begin."},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "Part one.\n\nPart two."},
    ]
    assert body["max_tokens"] == 4096 and body["temperature"] == 0.5
    assert body["tools"] == [
        {"name": "output", "description": "Return the answer in this structure", "input_schema": SCHEMA}
    ]
    assert body["tool_choice"] == {"type": "tool", "name": "output"}
    assert received["headers"]["anthropic-version"] == "2023-06-01"
    assert received["headers"]["x-api-key"] == "<redacted>"
    assert received["headers"]["x-trace"] == "t"
    # options may set max_tokens
    result = complete("anthropic", fake.url, CompletionRequest("claude-x", QUESTION, options={"max_tokens": 99}))
    assert fake.received(result.provider_request_id)["body"]["max_tokens"] == 99


def test_reasoning_tokens_are_reported(fake: FakeProviderServer) -> None:
    result = complete("openai", fake.url, CompletionRequest("o3-mini?reasoning_tokens=40", QUESTION))
    assert result.usage.reasoning_tokens == 40
    assert result.usage.output_tokens == len(result.text) // 4 + 40


# --- streaming ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", FORMATS)
@pytest.mark.parametrize("schema", [None, SCHEMA], ids=["text", "schema"])
def test_stream_reassembles_to_the_same_answer_with_usage(
    fake: FakeProviderServer, kind: str, schema: dict[str, Any] | None
) -> None:
    request = CompletionRequest("gpt-4o-mini?latency_ms=50", QUESTION, json_schema=schema)
    events, error = stream(kind, fake.url, request)
    assert error is None
    *deltas, final = events
    assert len(deltas) > 1 and all(isinstance(d, TextDelta) for d in deltas)
    assert isinstance(final, Completion)
    assert "".join(d.text for d in deltas) == final.text
    assert final.text == complete(kind, fake.url, CompletionRequest("gpt-4o-mini", QUESTION, json_schema=schema)).text
    assert final.usage.input_tokens == sum(len(m.content) for m in QUESTION) // 4
    assert final.usage.output_tokens == len(final.text) // 4
    assert final.provider_request_id
    if schema is not None:
        assert list(VALIDATOR.iter_errors(json.loads(final.text))) == []


@pytest.mark.parametrize("kind", FORMATS)
def test_stream_dropped_mid_way_is_a_connection_error(fake: FakeProviderServer, kind: str) -> None:
    events, error = stream(kind, fake.url, CompletionRequest("gpt-4o-mini?stream_fail_after=2", QUESTION))
    assert [type(e) for e in events] == [TextDelta, TextDelta]
    assert isinstance(error, ProviderConnectionError)


@pytest.mark.parametrize("kind", FORMATS)
def test_stream_error_event_is_a_server_error(fake: FakeProviderServer, kind: str) -> None:
    model = "gpt-4o-mini?stream_fail_after=1&stream_fail_mode=error"
    events, error = stream(kind, fake.url, CompletionRequest(model, QUESTION))
    assert len(events) == 1
    assert isinstance(error, ProviderServerError)
    assert error.http_status == (500 if kind == "openai" else 529)
    assert "simulated stream failure" in str(error)


# --- error mapping -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", FORMATS)
def test_503_is_a_server_error_naming_model_status_and_reason(fake: FakeProviderServer, kind: str) -> None:
    error = expect_error(kind, fake.url, "gpt-4o-mini?fail=503", ProviderServerError)
    assert error.http_status == 503 and error.retryable
    assert error.model.endswith("/gpt-4o-mini?fail=503")
    assert "HTTP 503" in str(error) and "simulated failure (503)" in str(error)
    assert API_KEY not in str(error)


def test_anthropic_529_overloaded_is_a_server_error(fake: FakeProviderServer) -> None:
    assert expect_error("anthropic", fake.url, "claude?fail=529", ProviderServerError).http_status == 529


@pytest.mark.parametrize("kind", FORMATS)
def test_429_is_rate_limited_with_retry_after(fake: FakeProviderServer, kind: str) -> None:
    error = expect_error(kind, fake.url, "gpt-4o-mini?fail=429&retry_after=2.5", ProviderRateLimited)
    assert error.retry_after == 2.5 and error.http_status == 429
    assert expect_error(kind, fake.url, "gpt-4o-mini?fail=429", ProviderRateLimited).retry_after == 1.0


@pytest.mark.parametrize("kind", FORMATS)
def test_400_is_rejected_and_not_retryable(fake: FakeProviderServer, kind: str) -> None:
    error = expect_error(kind, fake.url, "gpt-4o-mini?fail=400", ProviderRejected)
    assert error.http_status == 400 and not error.retryable
    # an unknown directive is answered 400 too, naming it
    assert "nonsense" in str(expect_error(kind, fake.url, "gpt-4o-mini?nonsense=1", ProviderRejected))


@pytest.mark.parametrize("kind", FORMATS)
def test_fail_times_fails_only_the_first_requests(fake: FakeProviderServer, kind: str) -> None:
    model = f"gpt-4o-mini-{kind}?fail=502&fail_times=2"  # counted per exact model string
    expect_error(kind, fake.url, model, ProviderServerError)
    expect_error(kind, fake.url, model, ProviderServerError)
    assert complete(kind, fake.url, CompletionRequest(model, QUESTION)).text.startswith("[simulated] ")


def test_connection_refused_is_a_connection_error() -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    error = expect_error("openai", f"http://127.0.0.1:{port}", "gpt-4o-mini", ProviderConnectionError)
    assert "gpt-4o-mini" in str(error) and "could not reach the provider" in str(error)
    assert f"127.0.0.1:{port}" in str(error)  # aiohttp's ClientConnectorError names the address


@pytest.mark.parametrize("kind", FORMATS)
def test_latency_above_the_client_timeout_is_a_timeout(fake: FakeProviderServer, kind: str) -> None:
    error = expect_error(kind, fake.url, "gpt-4o-mini?latency_ms=1500", ProviderTimeout, timeout=0.2)
    assert "timed out" in str(error)


@pytest.mark.parametrize("kind", FORMATS)
def test_unreadable_2xx_body_is_a_response_error(fake: FakeProviderServer, kind: str) -> None:
    error = expect_error(kind, fake.url, "gpt-4o-mini?garbled=1", ProviderResponseError)
    assert "502 Bad Gateway" in str(error)  # the excerpt of what came back
    _, stream_error = stream(kind, fake.url, CompletionRequest("gpt-4o-mini?garbled=1", QUESTION))
    assert isinstance(stream_error, ProviderResponseError)


def test_error_messages_never_carry_the_api_key() -> None:
    body = {"error": {"message": f"Incorrect API key provided: {API_KEY}", "type": "invalid_request_error"}}
    response = httpx.Response(401, json=body, request=httpx.Request("POST", "http://x"))
    error = provider_error("openai/gpt-4o", response, secrets=(API_KEY,))
    assert isinstance(error, ProviderRejected)
    assert API_KEY not in str(error) and "Incorrect API key provided: <redacted>" in str(error)


def test_retry_after_reads_milliseconds_seconds_and_http_dates() -> None:
    assert parse_retry_after(httpx.Headers({"retry-after-ms": "1500", "retry-after": "9"})) == 1.5
    assert parse_retry_after(httpx.Headers({"retry-after": "7"})) == 7.0
    now = datetime(2025, 1, 1, tzinfo=UTC)
    date = format_datetime(now + timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(httpx.Headers({"retry-after": date}), now=now.timestamp()) == 30.0
    assert parse_retry_after(httpx.Headers({"retry-after": "soon"})) is None
    assert parse_retry_after(httpx.Headers()) is None


# --- scripted structured-output failures ---------------------------------------------------------


@pytest.mark.parametrize("kind", FORMATS)
def test_invalid_json_first_is_stateless(fake: FakeProviderServer, kind: str) -> None:
    model = "gpt-4o-mini?invalid_json=first"
    first = complete(kind, fake.url, CompletionRequest(model, QUESTION, json_schema=SCHEMA))
    with pytest.raises(json.JSONDecodeError):
        json.loads(first.text)
    reask = (*QUESTION, Message("assistant", first.text), Message("user", "That was not valid JSON."))
    second = complete(kind, fake.url, CompletionRequest(model, reask, json_schema=SCHEMA))
    assert list(VALIDATOR.iter_errors(json.loads(second.text))) == []
    # no memory between requests: a fresh conversation fails again
    again = complete(kind, fake.url, CompletionRequest(model, QUESTION, json_schema=SCHEMA))
    assert again.text == first.text


@pytest.mark.parametrize("kind", FORMATS)
def test_schema_violation_first_then_valid(fake: FakeProviderServer, kind: str) -> None:
    model = "gpt-4o-mini?schema_violation=first"
    first = json.loads(complete(kind, fake.url, CompletionRequest(model, QUESTION, json_schema=SCHEMA)).text)
    assert not VALIDATOR.is_valid(first)
    reask = (*QUESTION, Message("assistant", json.dumps(first)), Message("user", "Fix it."))
    second = json.loads(complete(kind, fake.url, CompletionRequest(model, reask, json_schema=SCHEMA)).text)
    assert VALIDATOR.is_valid(second)


# --- registry ------------------------------------------------------------------------------------


def test_registry_resolves_on_the_first_slash_only() -> None:
    keys = {"OPENAI_API_KEY": "sk-x", "ANTHROPIC_API_KEY": "sk-ant-x"}  # without keys: MissingKeyProvider
    registry = ProviderRegistry(Settings(fake_provider_url="http://fake.test:1234/", **keys))
    resolved = registry.resolve("openai/gpt-4o-mini")
    assert isinstance(resolved.provider, OpenAIProvider) and resolved.model_id == "gpt-4o-mini"
    resolved = registry.resolve("fake/org/model?latency_ms=5&fail=503")
    assert resolved.model_id == "org/model?latency_ms=5&fail=503"
    assert isinstance(resolved.provider, OpenAIProvider)
    assert resolved.provider.base_url == "http://fake.test:1234/v1"
    assert isinstance(registry.resolve("anthropic/claude-3-5-haiku").provider, AnthropicProvider)
    assert registry.known_prefixes() == ["anthropic", "fake", "fake-anthropic", "openai"]


@pytest.mark.parametrize("name", ["gpt-4o-mini", "mystery/model", "openai/", "/gpt-4o"])
def test_registry_rejects_unknown_names_naming_the_field(name: str) -> None:
    with pytest.raises(BadRequest) as info:
        ProviderRegistry(Settings()).resolve(name)
    assert info.value.field_name == "model" and info.value.status_code == 400
    assert repr(name) in str(info.value)
    assert "anthropic, fake, fake-anthropic, openai" in str(info.value)
    assert str(info.value.detail).startswith("model: ")


def test_registry_register_adds_a_prefix() -> None:
    registry = ProviderRegistry(Settings())
    registry.register("local", lambda client: OpenAIProvider("local", "http://localhost:11434/v1", "", client))
    resolved = registry.resolve("local/llama3.1:8b")
    assert resolved.provider.name == "local" and resolved.model_id == "llama3.1:8b"
    assert "local" in registry.known_prefixes()


def test_registry_client_is_shared_per_event_loop_and_configured(fake: FakeProviderServer) -> None:
    settings = Settings(
        fake_provider_url=fake.url,
        provider_max_connections=321,
        provider_timeout_seconds=42.0,
        provider_connect_timeout_seconds=3.0,
    )
    assert provider_http_limits(settings) == httpx.Limits(max_connections=321, max_keepalive_connections=321)
    assert provider_http_timeout(settings) == httpx.Timeout(42.0, connect=3.0)
    registry = ProviderRegistry(settings)

    async def call() -> tuple[Provider, Provider, str, str]:
        openai_like = registry.resolve("fake/gpt-4o-mini").provider
        assert registry.resolve("fake/other").provider is openai_like  # built once per loop
        anthropic_like = registry.resolve("fake-anthropic/claude").provider
        a = await openai_like.complete(CompletionRequest("gpt-4o-mini", QUESTION))
        b = await anthropic_like.complete(CompletionRequest("claude", QUESTION))
        await registry.aclose()
        return openai_like, anthropic_like, a.text, b.text

    first = asyncio.run(call())
    second = asyncio.run(call())  # a new loop gets its own client and adapters, and still works
    assert first[2] == first[3] == second[2] == "[simulated] What is the answer to everything?"
    assert first[0] is not second[0]
