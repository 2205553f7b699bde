"""The fake model provider: a real HTTP server speaking the OpenAI and Anthropic wire formats, with
behaviour scripted by the model name (`gpt-4o-mini?latency_ms=2000&fail=503`, see `FakeScript`).

It serves the tests, the benchmarks and the offline demo, so it must hold thousands of slow requests
at once: every wait is an `asyncio.sleep`, and the per-request work is a few dict operations.

    POST /v1/chat/completions   OpenAI (non-stream, or SSE ending with `data: [DONE]`)
    POST /v1/messages           Anthropic (non-stream, or its event stream)
    POST /v1/embeddings         OpenAI embeddings: bag-of-words hashed vectors (similar words, similar vectors)
    POST /v1/files, /v1/batches OpenAI's Files + Batch API (app/providers/fake_batches.py)
    POST /v1/messages/batches   Anthropic's Message Batches (app/providers/fake_anthropic_batches.py)
    GET  /healthz               liveness
    GET  /stats                 counters and the last requests received (secrets redacted)
    POST /stats/reset           zero the counters and the fail_times tallies

Run it with `python -m app.providers.fake --port 8765 [--rate-limit 50]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
from collections.abc import AsyncIterator, Callable
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from app.providers.fake_anthropic_batches import FakeMessageBatchAPI
from app.providers.fake_batches import FakeBatchAPI, FakeBatchStore
from app.providers.fake_formats import AnthropicFormat, EmbeddingsFormat, FakeReply, OpenAIFormat, WireFormat
from app.providers.fake_script import FakeScript, ScriptError, plan_answer
from app.providers.fake_state import FakeState

STREAM_PIECE_CHARS = 16
GARBLED_BODY = "<html><body><h1>502 Bad Gateway</h1></body></html>"
_DROP = None  # yielded by a stream body to cut the connection instead of finishing the response


class _EventStream(StreamingResponse):
    """An SSE response that can end by dropping the connection, and always frees its in-flight slot."""

    def __init__(self, chunks: AsyncIterator[str | None], on_close: Callable[[], None], headers: dict[str, str]):
        super().__init__(chunks, media_type="text/event-stream", headers={"cache-control": "no-cache", **headers})
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
            async for chunk in self.body_iterator:
                if chunk is _DROP:
                    return  # uvicorn closes the socket mid-body: the client sees a broken stream
                await send({"type": "http.response.body", "body": str(chunk).encode(), "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError:
            pass  # the client went away
        finally:
            self._on_close()


def create_fake_provider_app(rate_limit_per_second: float | None = None, batch_seconds: float = 0.5) -> Starlette:
    """The ASGI app. `rate_limit_per_second` caps model requests server-wide; the excess gets 429s.
    Provider batches finish `batch_seconds` after they were created (or as their lines' scripts say)."""
    state = FakeState(rate_limit_per_second)
    batch_store = FakeBatchStore(batch_seconds=batch_seconds)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def stats(request: Request) -> Response:
        return JSONResponse({**state.snapshot(), "batches": batch_store.snapshot()})

    async def reset(request: Request) -> Response:
        state.reset()
        return JSONResponse(state.snapshot())

    def model_route(fmt: WireFormat) -> Route:
        async def endpoint(request: Request) -> Response:
            return await _answer(request, fmt, state)

        return Route(fmt.path, endpoint, methods=["POST"])

    async def embeddings(request: Request) -> Response:
        return await _embed(request, state)

    routes = [
        Route("/healthz", healthz),
        Route(EmbeddingsFormat.path, embeddings, methods=["POST"]),
        Route("/stats", stats),
        Route("/stats/reset", reset, methods=["POST"]),
        model_route(OpenAIFormat()),
        model_route(AnthropicFormat()),
        *FakeBatchAPI(state, batch_store).routes(),
        *FakeMessageBatchAPI(state, batch_store).routes(),
    ]
    app = Starlette(routes=routes)
    app.state.fake = state
    app.state.fake_batches = batch_store
    return app


async def _answer(request: Request, fmt: WireFormat, state: FakeState) -> Response:
    state.begin()
    request_id = fmt.new_id()
    streaming = False
    try:
        try:
            body = json.loads(await request.body())
            prompt = fmt.parse(body)
            state.record(request_id, fmt.path, request.headers, body)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            return _error(fmt, state, 400, f"malformed request body: {exc}")
        wait = state.rate_limit_wait()
        if wait is not None:
            state.count_rate_limited()
            # Whole seconds, as Retry-After is usually sent; never 0, or clients would spin.
            message = "rate limit exceeded (simulated server-wide limit)"
            return _error(fmt, state, 429, message, retry=max(1, math.ceil(wait)))
        try:
            script = FakeScript.parse(prompt.model)
        except ScriptError as exc:
            return _error(fmt, state, 400, str(exc))
        status = script.failure_status(state.attempt(prompt.model))
        if status is not None:
            await asyncio.sleep(script.latency_ms / 1000)
            retry = script.retry_after if script.retry_after is not None else 1.0 if status == 429 else None
            return _error(fmt, state, status, f"simulated failure ({status}) for {script.model}", retry)
        if script.garbled:
            state.count_status(200)
            return Response(GARBLED_BODY, media_type="text/html", headers={"x-request-id": request_id})
        reply = FakeReply(request_id, script.model, prompt, plan_answer(prompt, script))
        headers = {"x-request-id": request_id}
        state.count_status(200)
        if prompt.stream:
            streaming = True
            return _EventStream(_stream_body(fmt, reply, script), state.end, headers)
        await asyncio.sleep(script.latency_ms / 1000)
        return JSONResponse(fmt.body(reply), headers=headers)
    finally:
        if not streaming:
            state.end()


async def _embed(request: Request, state: FakeState) -> Response:
    """Embeddings, with the same model-name directives for latency and failures as completions."""
    state.begin()
    fmt = OpenAIFormat()
    try:
        try:
            body = json.loads(await request.body())
            ask = EmbeddingsFormat.parse(body)
            state.record(f"emb-{fmt.new_id()}", EmbeddingsFormat.path, request.headers, body)
            script = FakeScript.parse(ask.model)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:  # ScriptError is a ValueError
            return _error(fmt, state, 400, f"malformed embeddings request: {exc}")
        await asyncio.sleep(script.latency_ms / 1000)
        status = script.failure_status(state.attempt(ask.model))
        if status is not None:
            return _error(fmt, state, status, f"simulated failure ({status}) for {script.model}", script.retry_after)
        state.count_status(200)
        return JSONResponse(EmbeddingsFormat.body(ask, script.model))
    finally:
        state.end()


def _error(fmt: WireFormat, state: FakeState, status: int, message: str, retry: float | None = None) -> Response:
    state.count_status(status)
    headers = fmt.retry_headers(retry) if retry is not None else {}
    return JSONResponse(fmt.error_body(status, message), status_code=status, headers=headers)


async def _stream_body(fmt: WireFormat, reply: FakeReply, script: FakeScript) -> AsyncIterator[str | None]:
    text = reply.answer.text
    pieces = [text[i : i + STREAM_PIECE_CHARS] for i in range(0, len(text), STREAM_PIECE_CHARS)] or [""]
    latency = script.latency_ms / 1000
    first = script.ttft_ms / 1000 if script.ttft_ms is not None else latency / len(pieces)
    gap = max(0.0, latency - first) / max(1, len(pieces) - 1)
    for event in fmt.stream_open(reply):
        yield event
    await asyncio.sleep(first)
    for sent in range(len(pieces) + 1):
        if sent == script.stream_fail_after:
            if script.stream_fail_mode == "error":
                yield fmt.stream_error(529 if isinstance(fmt, AnthropicFormat) else 500, "simulated stream failure")
            else:
                yield _DROP
            return
        if sent == len(pieces):
            break
        if sent and gap:
            await asyncio.sleep(gap)
        yield fmt.stream_delta(reply, pieces[sent])
    for event in fmt.stream_close(reply):
        yield event


def run_fake_provider(
    host: str = "127.0.0.1", port: int = 8765, rate_limit_per_second: float | None = None, batch_seconds: float = 0.5
) -> None:
    """Serve the fake provider until interrupted."""
    config = fake_server_config(create_fake_provider_app(rate_limit_per_second, batch_seconds), host=host, port=port)
    uvicorn.Server(config).run()


def fake_server_config(app: Starlette, **kwargs: Any) -> uvicorn.Config:
    """uvicorn settings for the fake; `kwargs` add host/port or override."""
    # Keep-alive longer than httpx's 5 s pool expiry, so the client always closes idle connections
    # first and never reuses one the server is closing; a deep backlog for bursts of connects.
    return uvicorn.Config(app, log_level="warning", access_log=False, timeout_keep_alive=30, backlog=4096, **kwargs)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Conveyor's scripted fake model provider")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--rate-limit", type=float, default=None, help="requests per second, server-wide")
    parser.add_argument(
        "--batch-seconds", type=float, default=0.5, help="provider batches end this long after creation"
    )
    args = parser.parse_args(argv)
    run_fake_provider(args.host, args.port, args.rate_limit, args.batch_seconds)


if __name__ == "__main__":
    main()
