"""The fake provider at the wire level: shapes of both formats, scripted behaviour, counters, load."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import time
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator

from app.providers.fake_schema import generate_value, violate
from app.providers.fake_script import FakeScript, ScriptError
from tests.fakeprovider import FakeProviderServer, start_fake_provider_process

USER = [{"role": "user", "content": "Tell me about the weather in Lund."}]


@pytest.fixture(scope="module")
def fake() -> Any:
    with FakeProviderServer() as server:
        yield server


def openai(url: str, model: str, **extra: Any) -> httpx.Response:
    return httpx.post(f"{url}/v1/chat/completions", json={"model": model, "messages": USER, **extra}, timeout=10)


def anthropic(url: str, model: str, **extra: Any) -> httpx.Response:
    body = {"model": model, "max_tokens": 100, "messages": USER, **extra}
    return httpx.post(f"{url}/v1/messages", json=body, timeout=10)


def sse_events(response: httpx.Response) -> list[tuple[str | None, str]]:
    """(event name, data) pairs of an event stream body."""
    events = []
    for block in response.text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((lines.get("event"), lines["data"]))
    return events


# --- wire shapes -----------------------------------------------------------------------------------


def test_openai_completion_looks_like_the_real_api(fake: FakeProviderServer) -> None:
    response = openai(fake.url, "gpt-4o-mini?reasoning_tokens=5")
    body = response.json()
    assert response.status_code == 200 and response.headers["x-request-id"] == body["id"]
    assert body["object"] == "chat.completion" and body["id"].startswith("chatcmpl-")
    assert isinstance(body["created"], int) and body["model"] == "gpt-4o-mini"
    choice = body["choices"][0]
    assert choice["message"] == {
        "role": "assistant",
        "content": "[simulated] Tell me about the weather in Lund.",
        "refusal": None,
    }
    assert choice["finish_reason"] == "stop"
    assert body["usage"] == {
        "prompt_tokens": len(USER[0]["content"]) // 4,
        "completion_tokens": len(choice["message"]["content"]) // 4 + 5,
        "total_tokens": body["usage"]["prompt_tokens"] + body["usage"]["completion_tokens"],
        "completion_tokens_details": {"reasoning_tokens": 5},
    }


def test_openai_stream_chunks_usage_and_done(fake: FakeProviderServer) -> None:
    response = openai(fake.url, "gpt-4o-mini", stream=True, stream_options={"include_usage": True})
    assert response.headers["content-type"].startswith("text/event-stream")
    events = [data for _, data in sse_events(response)]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(data) for data in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" and c["id"] == chunks[0]["id"] for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == "[simulated] Tell me about the weather in Lund."
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == len(text) // 4


def test_anthropic_tool_use_message_looks_like_the_real_api(fake: FakeProviderServer) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    tools = [{"name": "report", "description": "d", "input_schema": schema}]
    body = anthropic(fake.url, "claude-x", tools=tools, tool_choice={"type": "tool", "name": "report"}).json()
    assert body["type"] == "message" and body["role"] == "assistant" and body["id"].startswith("msg_")
    assert body["stop_reason"] == "tool_use" and body["stop_sequence"] is None
    (block,) = body["content"]
    assert block["type"] == "tool_use" and block["name"] == "report" and block["id"].startswith("toolu_")
    assert block["input"] == {"city": "simulated city"}
    assert set(body["usage"]) == {"input_tokens", "output_tokens"}


def test_anthropic_stream_event_sequence(fake: FakeProviderServer) -> None:
    response = anthropic(fake.url, "claude-x", stream=True)
    events = sse_events(response)
    names = [name for name, _ in events]
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(names[3:-3]) == {"content_block_delta"}
    payloads = [json.loads(data) for _, data in events]
    assert all(p["type"] == name for p, name in zip(payloads, names, strict=True))
    text = "".join(p["delta"]["text"] for p in payloads if p["type"] == "content_block_delta")
    assert text == "[simulated] Tell me about the weather in Lund."
    assert payloads[-2]["delta"]["stop_reason"] == "end_turn"
    assert payloads[-2]["usage"]["output_tokens"] == len(text) // 4


def test_errors_are_provider_shaped_with_retry_after(fake: FakeProviderServer) -> None:
    response = openai(fake.url, "gpt-4o-mini?fail=429&retry_after=3")
    assert response.status_code == 429
    assert response.headers["retry-after"] == "3" and response.headers["retry-after-ms"] == "3000"
    assert response.json()["error"]["message"] == "simulated failure (429) for gpt-4o-mini"
    response = anthropic(fake.url, "claude?fail=529")
    assert response.status_code == 529 and "retry-after" not in response.headers
    assert response.json() == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "simulated failure (529) for claude"},
    }


def test_bad_directives_and_bodies_are_400(fake: FakeProviderServer) -> None:
    response = openai(fake.url, "gpt-4o-mini?latency=5")
    assert response.status_code == 400 and "'latency'" in response.json()["error"]["message"]
    assert openai(fake.url, "gpt-4o-mini?fail=200").status_code == 400
    assert openai(fake.url, "gpt-4o-mini?invalid_json=sometimes").status_code == 400
    malformed = httpx.post(f"{fake.url}/v1/messages", content=b"{not json")
    assert malformed.status_code == 400 and malformed.json()["type"] == "error"


# --- content -------------------------------------------------------------------------------------


def test_fenced_schema_in_a_plain_prompt_gets_a_valid_json_answer(fake: FakeProviderServer) -> None:
    schema = {
        "type": "object",
        "properties": {
            "temp_c": {"type": "number", "minimum": -30, "maximum": 40},
            "sky": {"enum": ["sun", "rain"]},
        },
        "required": ["temp_c", "sky"],
    }
    # The input block comes first and is no schema; the fake must pick the second block.
    system = f'Input: ```json\n{{"city": "Lund"}}\n```\nAnswer with JSON matching:\n```json\n{json.dumps(schema)}\n```'
    messages = [{"role": "system", "content": system}, *USER]
    response = httpx.post(f"{fake.url}/v1/chat/completions", json={"model": "m", "messages": messages})
    value = json.loads(response.json()["choices"][0]["message"]["content"])
    assert Draft202012Validator(schema).is_valid(value) and set(value) == {"temp_c", "sky"}


def test_invalid_json_always_and_stateless_first(fake: FakeProviderServer) -> None:
    fmt = {"type": "json_object"}
    bad = openai(fake.url, "m?invalid_json=always", response_format=fmt).json()["choices"][0]["message"]["content"]
    assert bad.startswith("Sure! Here is the JSON you asked for:\n{")
    with pytest.raises(json.JSONDecodeError):
        json.loads(bad)
    reask = {"model": "m?invalid_json=always", "messages": [*USER, {"role": "assistant", "content": bad}]}
    still_bad = httpx.post(f"{fake.url}/v1/chat/completions", json={**reask, "response_format": fmt})
    assert still_bad.json()["choices"][0]["message"]["content"].startswith("Sure!")
    reask["model"] = "m?invalid_json=first"
    good = httpx.post(f"{fake.url}/v1/chat/completions", json={**reask, "response_format": fmt})
    assert json.loads(good.json()["choices"][0]["message"]["content"]) == {
        "answer": "[simulated] Tell me about the weather in Lund."
    }


def test_generated_values_honour_the_keywords() -> None:
    schema = {
        "type": "object",
        "properties": {
            "when": {"type": "string", "format": "date-time"},
            "day": {"type": "string", "format": "date"},
            "mail": {"type": "string", "format": "email"},
            "site": {"type": "string", "format": "uri"},
            "uid": {"type": "string", "format": "uuid"},
            "code": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{4}$"},
            "short": {"type": "string", "maxLength": 5},
            "long": {"type": "string", "minLength": 40},
            "score": {"type": "integer", "minimum": 10, "exclusiveMaximum": 12},
            "ratio": {"type": "number", "exclusiveMinimum": 0, "maximum": 0.5},
            "fixed": {"const": "exactly this"},
            "flags": {"type": "array", "items": {"type": "boolean"}, "minItems": 2, "uniqueItems": True},
            "letters": {"type": "array", "items": {"enum": ["a", "b", "c"]}, "minItems": 3, "maxItems": 3},
            "both": {"allOf": [{"properties": {"x": {"type": "integer"}}}, {"required": ["y"]}]},
            "tree": {"$ref": "#/$defs/node"},
        },
        "$defs": {
            "node": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "children": {"type": "array", "items": {"$ref": "#/$defs/node"}},
                },
                "required": ["name", "children"],
            }
        },
    }
    value = generate_value(schema, seed=1)
    validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    assert list(validator.iter_errors(value)) == []
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", value["when"])
    assert value["mail"] == "simulated.mail@example.com" and value["site"].startswith("https://")
    assert re.fullmatch(r"[A-Z]{3}-[0-9]{4}", value["code"]) and len(value["short"]) <= 5
    assert value["score"] in (10, 11) and value["fixed"] == "exactly this"
    assert sorted(value["flags"]) == [False, True] and value["both"]["y"] == "simulated y"
    assert value["tree"]["name"] == "simulated name"
    assert generate_value(schema, seed=1) == value and generate_value(schema, seed=2) != value


def test_violate_produces_valid_json_that_fails_the_schema() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}
    assert violate(schema, {"a": "x"}) == {}
    loose = {"type": "object", "properties": {"a": {"type": "string"}}}
    assert violate(loose, {"a": "x"}) == {"a": 12345}
    assert violate({"type": "string"}, "x") == 12345


def test_script_parsing() -> None:
    script = FakeScript.parse("org/model:8b?latency_ms=250&fail_times=1&retry_after=0.5&invalid_json=first")
    assert script.model == "org/model:8b" and script.latency_ms == 250.0
    assert script.fail == 503 and script.failure_status(1) == 503 and script.failure_status(2) is None
    assert script.retry_after == 0.5 and script.invalid_json == "first"
    with pytest.raises(ScriptError):
        FakeScript.parse("m?latency_ms=-1")


# --- timing, counters, limits, load --------------------------------------------------------------


def test_latency_and_time_to_first_token(fake: FakeProviderServer) -> None:
    started = time.monotonic()
    assert openai(fake.url, "m?latency_ms=300").status_code == 200
    assert time.monotonic() - started >= 0.3
    started = time.monotonic()
    with httpx.stream(
        "POST",
        f"{fake.url}/v1/chat/completions",
        json={"model": "m?ttft_ms=200&latency_ms=800", "messages": USER, "stream": True},
    ) as response:
        deltas = []
        for line in response.iter_lines():
            if '"content": "' in line and '"content": ""' not in line:
                deltas.append(time.monotonic() - started)
    # The first token comes at ttft, well before the last: compared with each other, not with the clock,
    # so a loaded machine that delays both does not fail the test.
    assert len(deltas) == 3 and deltas[0] >= 0.2 and deltas[-1] >= 0.8 and deltas[-1] - deltas[0] >= 0.3


def test_stats_count_in_flight_peak_and_reset(fake: FakeProviderServer) -> None:
    fake.reset()

    async def burst() -> None:
        async with httpx.AsyncClient(limits=httpx.Limits(max_connections=40)) as client:
            body = {"model": "m?latency_ms=300", "messages": USER}
            calls = [client.post(f"{fake.url}/v1/chat/completions", json=body) for _ in range(40)]
            statuses = {r.status_code for r in await asyncio.gather(*calls)}
            assert statuses == {200}

    asyncio.run(burst())
    openai(fake.url, "m?fail=429")
    stats = fake.stats()
    assert stats["requests_total"] == 41 and stats["in_flight"] == 0 and stats["peak_in_flight"] == 40
    assert stats["sent_429"] == 1 and stats["rate_limited"] == 0 and stats["by_status"] == {"200": 40, "429": 1}
    fake.reset()
    stats = fake.stats()
    assert (stats["requests_total"], stats["peak_in_flight"], stats["recent"]) == (0, 0, [])


def test_server_wide_rate_limit_sends_counted_429s() -> None:
    with FakeProviderServer(rate_limit_per_second=5) as limited:

        async def burst() -> list[httpx.Response]:
            async with httpx.AsyncClient() as client:
                calls = [
                    client.post(f"{limited.url}/v1/messages", json={"model": "c", "messages": USER}) for _ in range(15)
                ]
                return await asyncio.gather(*calls)

        responses = asyncio.run(burst())
        refused = [r for r in responses if r.status_code == 429]
        served = [r for r in responses if r.status_code == 200]
        assert 5 <= len(served) <= 8 and len(served) + len(refused) == 15  # a burst of 5, plus refills
        assert all(int(r.headers["retry-after"]) >= 1 for r in refused)
        assert refused[0].json()["error"]["type"] == "rate_limit_error"
        stats = limited.stats()
        assert stats["rate_limited"] == stats["sent_429"] == len(refused)


def test_holds_a_thousand_slow_requests_at_once(fake: FakeProviderServer) -> None:
    """Raw sockets, not httpx: httpcore's pool bookkeeping is quadratic in its connections and would
    measure the client rather than the server."""
    body = json.dumps({"model": "m?latency_ms=1000", "messages": USER}).encode()
    request = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: fake\r\nContent-Type: application/json\r\n"
        f"Connection: close\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body

    async def one() -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", fake.port)
        writer.write(request)
        answer = await reader.read()
        writer.close()
        return answer.split(b"\r\n", 1)[0]

    async def burst() -> list[bytes]:
        return await asyncio.gather(*(one() for _ in range(1000)))

    fake.reset()
    started = time.monotonic()
    status_lines = asyncio.run(burst())
    elapsed = time.monotonic() - started
    assert set(status_lines) == {b"HTTP/1.1 200 OK"}
    assert fake.stats()["peak_in_flight"] >= 900
    assert elapsed < 5, f"1000 concurrent 1 s requests took {elapsed:.1f} s"


def test_runs_as_a_process() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = start_fake_provider_process(port)
    try:
        response = openai(f"http://127.0.0.1:{port}", "gpt-4o-mini")
        assert response.json()["choices"][0]["message"]["content"].startswith("[simulated] ")
    finally:
        process.terminate()
        assert process.wait(timeout=10) is not None
