"""Each HTTP adapter's error mapping, answer by answer, without a server (tests/unit/wire_double.py).

The fallback chain acts on the class of a provider error (a 429 is waited out, anything else moves on to
the next model) and shows its message in the call's attempts, so every way a provider can answer badly
is pinned here: the class, `retryable`, the HTTP status, `retry_after` and the message. End to end, over
real sockets against the fake provider: tests/providers/test_adapters.py.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from aiohttp.client_reqrep import ConnectionKey

from app.errors import (
    ProviderConnectionError,
    ProviderError,
    ProviderRateLimited,
    ProviderRejected,
    ProviderResponseError,
    ProviderServerError,
    ProviderTimeout,
)
from app.providers.anthropic import AnthropicProvider
from app.providers.base import Completion, CompletionRequest, Message, TextDelta
from app.providers.http_adapter import HTTPAdapter
from app.providers.openai import OpenAIProvider
from tests.unit.wire_double import Reply, ScriptedClient, json_reply, sse_reply

KEY = "sk-unit-not-a-real-key-0001"
KINDS = ["openai", "anthropic"]
REQUEST = CompletionRequest("model-x", (Message("user", "Hello?"),))

# (status, class, retryable): what the chain decides on. 408 and 409 count as rejected like every other 4xx.
STATUSES = [
    (400, ProviderRejected, False),
    (401, ProviderRejected, False),
    (403, ProviderRejected, False),
    (404, ProviderRejected, False),
    (408, ProviderRejected, False),
    (409, ProviderRejected, False),
    (413, ProviderRejected, False),
    (422, ProviderRejected, False),
    (429, ProviderRateLimited, True),
    (500, ProviderServerError, True),
    (502, ProviderServerError, True),
    (503, ProviderServerError, True),
    (529, ProviderServerError, True),
]
# The `error.type` each provider sends with a status (Anthropic's own list; OpenAI's usual ones).
ANTHROPIC_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error"}
ANTHROPIC_TYPES |= {404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error", 529: "overloaded_error"}


def error_body(kind: str, status: int, message: str) -> dict[str, Any]:
    """An error body as each provider writes it."""
    if kind == "openai":
        kind_of = "server_error" if status >= 500 else "invalid_request_error"
        return {"error": {"message": message, "type": kind_of, "param": None, "code": None}}
    return {"type": "error", "error": {"type": ANTHROPIC_TYPES.get(status, "api_error"), "message": message}}


def adapter(kind: str, client: ScriptedClient) -> HTTPAdapter:
    if kind == "openai":
        return OpenAIProvider("openai", "https://api.openai.test/v1", KEY, client)  # type: ignore[arg-type]
    return AnthropicProvider("anthropic", "https://api.anthropic.test", KEY, client)  # type: ignore[arg-type]


def failure(kind: str, answer: Reply | BaseException) -> ProviderError:
    """The error `complete` raised for `answer`."""
    provider = adapter(kind, ScriptedClient(answer))
    with pytest.raises(ProviderError) as info:
        asyncio.run(provider.complete(REQUEST))
    return info.value


def streamed(kind: str, answer: Reply | BaseException) -> tuple[list[Any], ProviderError | None]:
    """Every event `stream` yielded for `answer`, and the error that ended it, if any."""
    provider = adapter(kind, ScriptedClient(answer))

    async def collect() -> tuple[list[Any], ProviderError | None]:
        events: list[Any] = []
        try:
            async for event in provider.stream(REQUEST):
                events.append(event)
        except ProviderError as error:
            return events, error
        return events, None

    return asyncio.run(collect())


def refused() -> aiohttp.ClientConnectorError:
    key = ConnectionKey("api.provider.test", 443, True, True, None, None, None)
    return aiohttp.ClientConnectorError(key, ConnectionRefusedError(111, "Connect call failed"))


# --- status codes ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("status", "cls", "retryable"), STATUSES, ids=[str(s[0]) for s in STATUSES])
def test_a_status_maps_to_its_error_with_the_providers_message(
    kind: str, status: int, cls: type[ProviderError], retryable: bool
) -> None:
    error = failure(kind, json_reply(status, error_body(kind, status, f"explained {status}")))
    assert type(error) is cls
    assert (error.http_status, error.retryable, error.retry_after) == (status, retryable, None)
    assert error.model == f"{kind}/model-x"
    assert str(error) == f"{kind}/model-x: HTTP {status} from the provider: explained {status}"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("headers", "wait"),
    [({"retry-after": "7"}, 7.0), ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5), ({}, None)],
    ids=["seconds", "milliseconds", "none"],
)
def test_a_429_carries_its_retry_after(kind: str, headers: dict[str, str], wait: float | None) -> None:
    error = failure(kind, json_reply(429, error_body(kind, 429, "slow down"), headers))
    assert isinstance(error, ProviderRateLimited) and error.retry_after == wait


@pytest.mark.parametrize("kind", KINDS)
def test_a_5xx_keeps_its_retry_after_too(kind: str) -> None:
    error = failure(kind, json_reply(503, error_body(kind, 503, "busy"), {"Retry-After": "3"}))
    assert isinstance(error, ProviderServerError) and error.retry_after == 3.0


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("body", "shown"),
    [
        (b"<html><body>502 Bad Gateway</body></html>", "<html><body>502 Bad Gateway</body></html>"),
        (b"", "(empty body)"),
        (b'{"message": "upstream unavailable"}', "upstream unavailable"),
        (b'{"detail": "no such deployment"}', "no such deployment"),
        (b"x" * 500, "x" * 199 + "…"),
    ],
    ids=["html", "empty", "message", "detail", "long"],
)
def test_a_body_in_no_provider_format_is_shown_as_it_came(kind: str, body: bytes, shown: str) -> None:
    error = failure(kind, Reply(502, body))
    assert isinstance(error, ProviderServerError)
    assert str(error) == f"{kind}/model-x: HTTP 502 from the provider: {shown}"


@pytest.mark.parametrize("kind", KINDS)
def test_a_key_echoed_by_the_provider_never_reaches_the_message(kind: str) -> None:
    error = failure(kind, json_reply(401, error_body(kind, 401, f"Incorrect API key provided: {KEY}")))
    assert KEY not in str(error) and "Incorrect API key provided: <redacted>" in str(error)


# --- the transport ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("answer", "cls", "words"),
    [
        (refused(), ProviderConnectionError, "could not reach the provider (ClientConnectorError: Cannot connect"),
        (aiohttp.ServerDisconnectedError(), ProviderConnectionError, "could not reach the provider"),
        (aiohttp.ConnectionTimeoutError("Connection timeout"), ProviderTimeout, "request timed out"),
        (TimeoutError(), ProviderTimeout, "request timed out (TimeoutError)"),
        (Reply(200, broken_by=aiohttp.SocketTimeoutError("Timeout on reading")), ProviderTimeout, "timed out"),
        (Reply(200, broken_by=aiohttp.ClientPayloadError("not completed")), ProviderConnectionError, "not completed"),
    ],
    ids=["refused", "disconnected", "connect-timeout", "timeout", "read-timeout", "truncated-body"],
)
def test_a_transport_failure_is_retryable_and_named(
    kind: str, answer: Reply | BaseException, cls: type[ProviderError], words: str
) -> None:
    error = failure(kind, answer)
    assert type(error) is cls and error.retryable and error.http_status is None
    assert str(error).startswith(f"{kind}/model-x: ") and words in str(error)


@pytest.mark.parametrize(
    ("kind", "body", "reason"),
    [
        ("openai", b"<html>ok</html>", "not JSON"),
        ("openai", b"[1, 2]", "not a JSON object"),
        ("openai", b'{"choices": []}', "no choices"),
        ("openai", b'{"choices": [{"index": 0}]}', "no message in choices[0]"),
        ("anthropic", b"<html>ok</html>", "not JSON"),
        ("anthropic", b'"text"', "not a JSON object"),
        ("anthropic", b'{"type": "message"}', "no content blocks"),
    ],
)
def test_an_unreadable_2xx_answer_is_a_response_error(kind: str, body: bytes, reason: str) -> None:
    error = failure(kind, Reply(200, body))
    assert isinstance(error, ProviderResponseError) and error.retryable and error.http_status == 200
    assert str(error).startswith(f"{kind}/model-x: unreadable 200 response ({reason}): ")


# --- event streams ------------------------------------------------------------------------------------

OPENAI_DELTAS = [f'data: {{"id": "c1", "choices": [{{"delta": {{"content": "{w}"}}}}]}}\n\n' for w in ("Hel", "lo")]
ANTHROPIC_DELTAS = [
    'event: message_start\ndata: {"type": "message_start", "message": {"id": "m1", "usage": {"input_tokens": 3}}}\n\n',
    *(
        f'event: content_block_delta\ndata: {{"type": "content_block_delta", "delta": {{"type": "text_delta", '
        f'"text": "{w}"}}}}\n\n'
        for w in ("Hel", "lo")
    ),
]
DELTAS = {"openai": OPENAI_DELTAS, "anthropic": ANTHROPIC_DELTAS}
END = {"openai": "data: [DONE]\n\n", "anthropic": 'event: message_stop\ndata: {"type": "message_stop"}\n\n'}


@pytest.mark.parametrize("kind", KINDS)
def test_a_whole_stream_ends_in_one_completion(kind: str) -> None:
    """The baseline the broken streams below are told from."""
    events, error = streamed(kind, sse_reply(*DELTAS[kind], END[kind]))
    assert error is None and events[:2] == [TextDelta("Hel"), TextDelta("lo")]
    assert isinstance(events[-1], Completion) and events[-1].text == "Hello"


@pytest.mark.parametrize("kind", KINDS)
def test_a_stream_closed_before_its_terminator_is_a_response_error(kind: str) -> None:
    events, error = streamed(kind, sse_reply(*DELTAS[kind]))
    assert events == [TextDelta("Hel"), TextDelta("lo")]
    terminator = "data: [DONE]" if kind == "openai" else "message_stop"
    assert isinstance(error, ProviderResponseError)
    assert str(error) == f"{kind}/model-x: unreadable 200 response (the stream ended before {terminator}): ''"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("cause", "cls"),
    [
        (aiohttp.ClientPayloadError("Response payload is not completed"), ProviderConnectionError),
        (aiohttp.SocketTimeoutError("Timeout on reading data from socket"), ProviderTimeout),
    ],
    ids=["cut-off", "stalled"],
)
def test_a_stream_broken_off_keeps_what_came_and_says_why(
    kind: str, cause: BaseException, cls: type[ProviderError]
) -> None:
    events, error = streamed(kind, sse_reply(*DELTAS[kind], broken_by=cause))
    assert events == [TextDelta("Hel"), TextDelta("lo")]
    assert type(error) is cls and error.retryable and str(cause) in str(error)


@pytest.mark.parametrize("kind", KINDS)
def test_event_data_that_is_not_json_is_a_response_error(kind: str) -> None:
    events, error = streamed(kind, sse_reply(DELTAS[kind][0], "data: {not json\n\n", END[kind]))
    assert isinstance(error, ProviderResponseError)
    assert "(event data is not JSON): '{not json'" in str(error)


@pytest.mark.parametrize("kind", KINDS)
def test_a_stream_refused_before_it_began_maps_like_a_completion(kind: str) -> None:
    events, error = streamed(kind, json_reply(429, error_body(kind, 429, "slow down"), {"retry-after": "2"}))
    assert events == [] and isinstance(error, ProviderRateLimited) and error.retry_after == 2.0
    assert str(error) == f"{kind}/model-x: HTTP 429 from the provider: slow down"


@pytest.mark.parametrize(
    ("error_type", "cls", "status"),
    [
        ("overloaded_error", ProviderServerError, 529),
        ("api_error", ProviderServerError, 500),
        ("rate_limit_error", ProviderRateLimited, 429),
        ("invalid_request_error", ProviderRejected, 400),
        ("something_new", ProviderServerError, 500),
    ],
)
def test_an_error_event_in_an_anthropic_stream_maps_by_its_type(
    error_type: str, cls: type[ProviderError], status: int
) -> None:
    payload = f'{{"type": "error", "error": {{"type": "{error_type}", "message": "went wrong"}}}}'
    events, error = streamed("anthropic", sse_reply(*ANTHROPIC_DELTAS, f"event: error\ndata: {payload}\n\n"))
    assert events == [TextDelta("Hel"), TextDelta("lo")]
    assert type(error) is cls and error.http_status == status
    assert str(error) == f"anthropic/model-x: HTTP {status} in the stream: went wrong"


@pytest.mark.parametrize(
    ("error_type", "cls", "status"),
    [("server_error", ProviderServerError, 500), ("invalid_request_error", ProviderRejected, 400)],
)
def test_an_error_chunk_in_an_openai_stream_maps_by_its_type(
    error_type: str, cls: type[ProviderError], status: int
) -> None:
    chunk = f'data: {{"error": {{"message": "went wrong", "type": "{error_type}"}}}}\n\n'
    events, error = streamed("openai", sse_reply(*OPENAI_DELTAS, chunk))
    assert events == [TextDelta("Hel"), TextDelta("lo")]
    assert type(error) is cls and error.http_status == status
    assert str(error) == f"openai/model-x: HTTP {status} in the stream: went wrong"
