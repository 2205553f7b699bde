"""Latency Conveyor adds to a call: `/v2/call` (API → Redis → worker → provider → Postgres → Redis → API)
against calling the same fake provider directly through the same adapter, in one run; and the CPU a
call costs each of Conveyor's processes (API, worker, its Postgres backends, a private Redis).

    .venv/bin/python -m bench.call_overhead [--calls 300] [--concurrency 1,32] [--baseline REV]

With `--baseline REV` a second stack runs that revision's code (a git worktree of it) beside this
one, and the two are measured in alternating rounds of the same run: before and after, side by side.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from app.config import Settings
from app.providers.base import CompletionRequest, Message
from app.providers.registry import ProviderRegistry
from bench.harness import ROOT, BenchStack, checkout, print_table, start_bench_stack, summary_ms

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


@dataclass
class Contender:
    """A Conveyor stack under measurement: its latencies and CPU per process, summed over rounds."""

    label: str
    stack: BenchStack
    key: str = ""
    latencies: list[float] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)
    calls: int = 0

    def measure(self, calls: int, concurrency: int) -> None:
        meter = self.stack.cpu_meter()
        meter.start()
        self.latencies += asyncio.run(through_conveyor(self.stack.api_url, self.key, calls, concurrency))
        for name, seconds in meter.stop().items():
            self.cpu[name] = self.cpu.get(name, 0.0) + seconds
        self.calls += calls + 1  # and its warm-up call

    def cpu_row(self, concurrency: int) -> list[object]:
        per_call = {name: seconds * 1000 / self.calls for name, seconds in self.cpu.items()}
        cells = [f"{per_call.get(name, 0.0):.2f}" for name in ("api", "worker", "postgres", "redis")]
        return [concurrency, self.label, *cells, f"{sum(per_call.values()):.2f}"]


def start_contender(label: str, root: Path = ROOT, **env: str) -> Contender:
    stack = start_bench_stack(root=root, **env)
    stack.start_api()
    stack.start_worker(concurrency=64)
    return Contender(label, stack, stack.new_key())


def measure_all(
    contenders: list[Contender], concurrencies: list[int], calls: int, rounds: int
) -> tuple[list[list[object]], list[list[object]]]:
    """Every contender at each concurrency, in rounds that rotate their order, beside the direct-call
    floor measured in the same rounds: the latency rows (p50, p99, mean and what each adds) and the
    CPU rows of the tables `print_tables` prints."""
    settings = contenders[-1].stack.settings
    latency_rows: list[list[object]] = []
    cpu_rows: list[list[object]] = []
    for concurrency in concurrencies:
        per_round = max(1, calls // rounds)
        direct_latencies: list[float] = []
        for contender in contenders:
            contender.latencies, contender.cpu, contender.calls = [], {}, 0
        for round_index in range(rounds):
            direct_latencies += asyncio.run(direct(settings, per_round, concurrency))
            shift = round_index % len(contenders)
            for contender in contenders[shift:] + contenders[:shift]:
                contender.measure(per_round, concurrency)
        base = summary_ms(direct_latencies)
        for stat in ("p50", "p99", "mean"):
            row: list[object] = [concurrency, stat, f"{base[stat]:.1f}"]
            for contender in contenders:
                measured = summary_ms(contender.latencies)
                row += [f"{measured[stat]:.1f}", f"{measured[stat] - base[stat]:+.1f}"]
            latency_rows.append(row)
        cpu_rows += [contender.cpu_row(concurrency) for contender in contenders]
    return latency_rows, cpu_rows


def print_tables(title: str, contenders: list[Contender], rows: tuple[list[list[object]], list[list[object]]]) -> None:
    latency_rows, cpu_rows = rows
    header = ["concurrency", "stat", "direct ms"]
    for contender in contenders:
        header += [f"{contender.label} ms", "added ms"]
    print_table(title, header, latency_rows)
    print_table(
        "CPU per call, ms (from /proc; Postgres: the backends serving the API and worker; Redis: a private server)",
        ["concurrency", "stack", "api", "worker", "postgres", "redis", "total"],
        cpu_rows,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--concurrency", default="1,32")
    parser.add_argument("--rounds", type=int, default=3, help="alternations between contenders per concurrency")
    parser.add_argument("--baseline", help="also measure this git revision (a worktree of it), interleaved")
    args = parser.parse_args()

    contenders: list[Contender] = []
    try:
        if args.baseline:
            contenders.append(start_contender(f"conveyor {args.baseline}", checkout(args.baseline)))
        contenders.append(start_contender("conveyor", ROOT))
        concurrencies = [int(c) for c in args.concurrency.split(",")]
        print_tables(
            f"Added latency per call ({args.calls} calls in {args.rounds} alternating rounds, fake provider at 0 ms, "
            "structured output, API + 1 worker + Redis + Postgres as separate processes)",
            contenders,
            measure_all(contenders, concurrencies, args.calls, args.rounds),
        )
    finally:
        for contender in contenders:
            contender.stack.stop()


if __name__ == "__main__":
    main()
