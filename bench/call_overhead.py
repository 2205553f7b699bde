"""Latency Conveyor adds to a call: `/v2/call` (API → Redis → worker → provider → Postgres → Redis → API)
against calling the same fake provider directly through the same adapter, in one run.

    .venv/bin/python -m bench.call_overhead [--calls 300] [--concurrency 1,8]
"""

from __future__ import annotations

import argparse
import asyncio
import time

import httpx

from app.config import Settings
from app.providers.base import CompletionRequest, Message
from app.providers.registry import ProviderRegistry
from bench.harness import print_table, start_bench_stack, summary_ms

MODEL = "fake/bench"
SCHEMA = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}


async def timed_batch(call, calls: int, concurrency: int) -> list[float]:
    """Run `calls` calls `concurrency` at a time; the latency of each."""
    latencies: list[float] = []
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with gate:
            start = time.perf_counter()
            await call(i)
            latencies.append(time.perf_counter() - start)

    await asyncio.gather(*(one(i) for i in range(calls)))
    return latencies


async def direct(settings: Settings, calls: int, concurrency: int) -> list[float]:
    registry = ProviderRegistry(settings)
    resolved = registry.resolve(MODEL)

    async def call(i: int) -> None:
        await resolved.provider.complete(
            CompletionRequest(
                model=resolved.model_id,
                messages=(Message("system", "Answer."), Message("user", f"question {i}")),
                json_schema=SCHEMA,
            )
        )

    await call(-1)  # warm the connection pool, as the worker's is
    try:
        return await timed_batch(call, calls, concurrency)
    finally:
        await registry.aclose()


async def through_conveyor(api_url: str, key: str, calls: int, concurrency: int) -> list[float]:
    limits = httpx.Limits(max_connections=concurrency + 4)
    async with httpx.AsyncClient(
        base_url=api_url + "/v2", headers={"Authorization": f"Bearer {key}"}, timeout=60, limits=limits
    ) as client:

        async def call(i: int) -> None:
            body = {"name": "bench", "input": f"question {i}", "output_schema": SCHEMA, "model": MODEL}
            response = await client.post("/call", json=body)
            response.raise_for_status()

        await call(-1)
        return await timed_batch(call, calls, concurrency)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--concurrency", default="1,8")
    args = parser.parse_args()

    stack = start_bench_stack()
    try:
        stack.start_api()
        stack.start_worker(concurrency=64)
        key = stack.new_key()
        rows = []
        for concurrency in (int(c) for c in args.concurrency.split(",")):
            base = summary_ms(asyncio.run(direct(stack.settings, args.calls, concurrency)))
            conv = summary_ms(asyncio.run(through_conveyor(stack.api_url, key, args.calls, concurrency)))
            for stat in ("p50", "p99", "mean"):
                rows.append(
                    [
                        concurrency,
                        stat,
                        f"{base[stat]:.1f}",
                        f"{conv[stat]:.1f}",
                        f"{conv[stat] - base[stat]:+.1f}",
                    ]
                )
        print_table(
            f"Added latency per call ({args.calls} calls, fake provider at 0 ms, structured output, "
            "API + 1 worker + Redis + Postgres as separate processes)",
            ["concurrency", "stat", "direct ms", "conveyor ms", "added ms"],
            rows,
        )
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
