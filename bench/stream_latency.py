"""Streaming latency: from the provider sending its first token to the client receiving its first delta,
through Conveyor (worker → Redis pub/sub → API → SSE) against reading the same provider stream directly
through the same adapter, in one run.

The fake provider runs in this process behind a small ASGI wrapper that notes when it hands each
stream's first content chunk to the socket, so both ends are timed on one clock. API and worker are
separate processes on Postgres and Redis, as in production.

    .venv/bin/python -m bench.stream_latency [--streams 60] [--ttft-ms 50]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import threading
import time
from typing import Any

import httpx
import uvicorn

from app.providers.base import CompletionRequest, Message, TextDelta
from app.providers.fake import create_fake_provider_app, fake_server_config
from app.providers.registry import ProviderRegistry
from bench.harness import print_table, start_bench_stack, summary_ms

INPUT = "stream me a reasonably long answer " * 4


class FirstTokenClock:
    """ASGI wrapper: when the wrapped fake provider sends each model's first non-empty content delta."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.first_token: dict[str, float] = {}

    async def __call__(self, scope, receive, send) -> None:  # noqa: ANN001 - ASGI
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        body = bytearray()

        async def tapped_receive():  # noqa: ANN202
            message = await receive()
            body.extend(message.get("body", b""))
            return message

        async def tapped_send(message) -> None:  # noqa: ANN001
            if message["type"] == "http.response.body" and body:
                model = json.loads(body).get("model", "")
                if model not in self.first_token and _has_content(message.get("body", b"")):
                    self.first_token[model] = time.perf_counter()
            await send(message)

        await self.app(scope, tapped_receive, tapped_send)


def _has_content(chunk: bytes) -> bool:
    for line in chunk.decode(errors="replace").splitlines():
        if line.startswith("data: {"):
            for choice in json.loads(line[6:]).get("choices") or ():
                if (choice.get("delta") or {}).get("content"):
                    return True
    return False


def serve_fake() -> tuple[str, FirstTokenClock, uvicorn.Server]:
    clock = FirstTokenClock(create_fake_provider_app())
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(fake_server_config(clock))
    threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True).start()
    while not server.started:
        time.sleep(0.01)
    return f"http://127.0.0.1:{sock.getsockname()[1]}", clock, server


async def direct(stack, clock: FirstTokenClock, streams: int, ttft_ms: int) -> tuple[list[float], list[float]]:
    """(provider first token → first delta, request → first delta) reading the provider stream directly."""
    registry = ProviderRegistry(stack.settings)
    handoff, total = [], []
    try:
        for i in range(streams + 1):
            resolved = registry.resolve(f"fake/bench?ttft_ms={ttft_ms}&run=direct{i}")
            request = CompletionRequest(resolved.model_id, (Message("user", INPUT),))
            start = time.perf_counter()
            async for event in resolved.provider.stream(request):
                if isinstance(event, TextDelta) and event.text:
                    arrived = time.perf_counter()
                    break
            if i:  # the first one warms the connection pool, as the worker's is
                handoff.append(arrived - clock.first_token[resolved.model_id])
                total.append(arrived - start)
    finally:
        await registry.aclose()
    return handoff, total


async def through_conveyor(
    api_url: str, key: str, clock: FirstTokenClock, streams: int, ttft_ms: int
) -> tuple[list[float], list[float]]:
    handoff, total = [], []
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=api_url + "/v2", headers=headers, timeout=60) as client:
        for i in range(streams + 1):
            model = f"fake/bench?ttft_ms={ttft_ms}&run=conveyor{i}"
            start = time.perf_counter()
            async with client.stream(
                "POST", "/call/stream", json={"name": "bench", "input": INPUT, "model": model}
            ) as r:
                r.raise_for_status()
                arrived = None
                async for line in r.aiter_lines():  # read to the end: the call finishes before the next
                    if arrived is None and line.startswith("data: ") and '"delta"' in line:
                        arrived = time.perf_counter()
            if i:
                handoff.append(arrived - clock.first_token[model.removeprefix("fake/")])
                total.append(arrived - start)
    return handoff, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--streams", type=int, default=60)
    parser.add_argument("--ttft-ms", type=int, default=50, help="the fake provider's time to first token")
    args = parser.parse_args()

    fake_url, clock, fake_server = serve_fake()
    stack = start_bench_stack(CONVEYOR_FAKE_PROVIDER_URL=fake_url, OPENAI_BASE_URL=fake_url + "/v1")
    try:
        stack.start_api()
        stack.start_worker(concurrency=16)
        key = stack.new_key()
        base_handoff, base_total = asyncio.run(direct(stack, clock, args.streams, args.ttft_ms))
        conv_handoff, conv_total = asyncio.run(through_conveyor(stack.api_url, key, clock, args.streams, args.ttft_ms))
        rows = []
        for label, base, conv in [
            ("provider's first token → client's first delta", base_handoff, conv_handoff),
            ("request sent → client's first delta", base_total, conv_total),
        ]:
            b, c = summary_ms(base), summary_ms(conv)
            for stat in ("p50", "p99", "mean"):
                rows.append([label, stat, f"{b[stat]:.2f}", f"{c[stat]:.2f}", f"{c[stat] - b[stat]:+.2f}"])
        print_table(
            f"Streaming latency ({args.streams} sequential streams, fake provider time to first token "
            f"{args.ttft_ms} ms; API + 1 worker + Redis + Postgres as separate processes)",
            ["interval", "stat", "direct ms", "conveyor ms", "added ms"],
            rows,
        )
    finally:
        stack.stop()
        fake_server.should_exit = True


if __name__ == "__main__":
    main()
