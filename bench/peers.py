"""Conveyor beside its peers, in one run: the same calls straight to the fake provider (the floor),
through LiteLLM's proxy (one worker, storing nothing) and through Conveyor (a durable job per call),
interleaved round by round so the machine's load falls on all three alike.

    .venv/bin/python -m bench.peers [--calls 1000] [--concurrency 50] [--latency-ms 200] [--rounds 3]

LiteLLM is a benchmark dependency only: it is installed into its own virtualenv (`.venv-litellm`,
outside the project's) the first time this runs, and pointed at the same fake provider.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from app.embedded import free_port, wait_for_port
from bench.harness import ROOT, BenchStack, checkout, print_table, start_bench_stack, summary_ms
from bench.proc_cpu import CpuMeter, process_tree

LITELLM_VENV = ROOT / ".venv-litellm"
LITELLM_REQUIREMENT = "litellm[proxy]"
SCHEMA = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}
INSTRUCTIONS = "Answer the question."
LITELLM_KEY = "sk-bench-" + secrets.token_hex(16)


def ensure_litellm() -> Path:
    """The `litellm` command of the benchmark's own virtualenv, installing it the first time."""
    command = LITELLM_VENV / "bin" / "litellm"
    if not command.exists():
        print(f"installing {LITELLM_REQUIREMENT} into {LITELLM_VENV} (benchmark only, once)", flush=True)
        if LITELLM_VENV.is_symlink() and not LITELLM_VENV.exists():
            LITELLM_VENV.unlink()  # a link to a virtualenv that is gone (a checkout moved to a new machine)
        subprocess.run([sys.executable, "-m", "venv", str(LITELLM_VENV)], check=True)
        pip = [str(LITELLM_VENV / "bin" / "python"), "-m", "pip", "install", "--quiet"]
        subprocess.run([*pip, LITELLM_REQUIREMENT], check=True)
    return command


def start_litellm(fake_url: str, model: str) -> tuple[subprocess.Popen, str]:
    """LiteLLM's proxy with one uvicorn worker, routing `bench` to the fake provider's OpenAI API."""
    config = Path(tempfile.mkdtemp()) / "litellm.yaml"
    config.write_text(
        "model_list:\n"
        "  - model_name: bench\n"
        "    litellm_params:\n"
        f"      model: openai/{model}\n"
        f"      api_base: {fake_url}/v1\n"
        "      api_key: sk-bench\n"
        "litellm_settings:\n"
        "  telemetry: false\n"
        "  drop_params: true\n"
    )
    port = free_port()
    env = {
        **os.environ,
        "LITELLM_MASTER_KEY": LITELLM_KEY,  # it refuses to start without one
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no fetch of the price map: no network here
        "LITELLM_LOG": "ERROR",
        "LITELLM_TELEMETRY": "False",
    }
    process = subprocess.Popen(
        [str(ensure_litellm()), "--config", str(config), "--port", str(port), "--num_workers", "1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_port(port, timeout=120)
    return process, f"http://127.0.0.1:{port}"


Call = Callable[[httpx.AsyncClient, int], Awaitable[None]]


@dataclass
class Route:
    """One way to make the call, with what it measured over all rounds."""

    label: str
    base_url: str
    call: Call
    headers: dict[str, str] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0
    calls: int = 0

    async def run(self, calls: int, concurrency: int) -> None:
        limits = httpx.Limits(max_connections=concurrency + 4, max_keepalive_connections=concurrency + 4)
        async with httpx.AsyncClient(base_url=self.base_url, headers=self.headers, timeout=60, limits=limits) as client:
            await self.call(client, -1)  # warm up
            gate = asyncio.Semaphore(concurrency)

            async def one(i: int) -> None:
                async with gate:
                    start = time.perf_counter()
                    await self.call(client, i)
                    self.latencies.append(time.perf_counter() - start)

            started = time.perf_counter()
            await asyncio.gather(*(one(i) for i in range(calls)))
            self.seconds += time.perf_counter() - started
            self.calls += calls


def chat_body(model: str, i: int) -> dict:
    return {
        "model": model,
        "messages": [{"role": "system", "content": INSTRUCTIONS}, {"role": "user", "content": f"question {i}"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "answer", "schema": SCHEMA}},
    }


def direct_call(model: str) -> Call:
    async def call(client: httpx.AsyncClient, i: int) -> None:
        (await client.post("/v1/chat/completions", json=chat_body(model, i))).raise_for_status()

    return call


def litellm_call() -> Call:
    async def call(client: httpx.AsyncClient, i: int) -> None:
        (await client.post("/v1/chat/completions", json=chat_body("bench", i))).raise_for_status()

    return call


def conveyor_call(model: str) -> Call:
    async def call(client: httpx.AsyncClient, i: int) -> None:
        body = {
            "name": "peers",
            "instructions": INSTRUCTIONS,
            "input": f"question {i}",
            "output_schema": SCHEMA,
            "model": f"fake/{model}",
        }
        (await client.post("/v2/call", json=body)).raise_for_status()

    return call


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=1000, help="calls per path, over all rounds")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--latency-ms", type=int, default=200, help="the fake provider's latency")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--slots", type=int, default=200, help="the Conveyor worker's job slots")
    parser.add_argument("--baseline", help="also measure Conveyor at this git revision (a worktree of it)")
    args = parser.parse_args()

    model = f"bench?latency_ms={args.latency_ms}"
    ensure_litellm()
    stack: BenchStack = start_bench_stack()
    baseline: BenchStack | None = None
    litellm: subprocess.Popen | None = None
    try:
        if args.baseline:
            baseline = start_bench_stack(root=checkout(args.baseline))
            baseline.start_api()
            baseline.start_worker(concurrency=args.slots)
            baseline_key = baseline.new_key()
        stack.start_api()
        stack.start_worker(concurrency=args.slots)
        key = stack.new_key()
        litellm, litellm_url = start_litellm(stack.fake_url, model)
        paths = [
            Route("direct to the provider (floor)", stack.fake_url, direct_call(model)),
            Route("LiteLLM proxy, 1 worker", litellm_url, litellm_call(), {"Authorization": f"Bearer {LITELLM_KEY}"}),
            Route("Conveyor (API + 1 worker)", stack.api_url, conveyor_call(model), {"Authorization": f"Bearer {key}"}),
        ]
        if baseline is not None:
            auth = {"Authorization": f"Bearer {baseline_key}"}
            paths.append(Route(f"Conveyor at {args.baseline}", baseline.api_url, conveyor_call(model), auth))
        meters = {
            paths[1].label: CpuMeter({"litellm": lambda: process_tree(litellm.pid)}),
            paths[2].label: stack.cpu_meter(),
            **({paths[3].label: baseline.cpu_meter()} if baseline is not None else {}),
        }
        cpu: dict[str, dict[str, float]] = {label: {} for label in meters}
        per_round = max(1, args.calls // args.rounds)
        for round_index in range(args.rounds):
            for path in paths if round_index % 2 == 0 else paths[::-1]:
                meter = meters.get(path.label)
                if meter is not None:
                    meter.start()
                asyncio.run(path.run(per_round, args.concurrency))
                if meter is not None:
                    for name, seconds in meter.stop().items():
                        cpu[path.label][name] = cpu[path.label].get(name, 0.0) + seconds
        floor = summary_ms(paths[0].latencies)
        rows = []
        for path in paths:
            measured = summary_ms(path.latencies)
            rows.append(
                [
                    path.label,
                    f"{measured['p50'] - floor['p50']:+.1f}",
                    f"{measured['p99'] - floor['p99']:+.1f}",
                    f"{measured['p50']:.1f}",
                    f"{path.calls / path.seconds:.0f}",
                ]
            )
        print_table(
            f"{args.calls} calls per path in {args.rounds} interleaved rounds, concurrency {args.concurrency}, "
            f"fake provider at {args.latency_ms} ms (structured output)",
            ["path", "added p50 ms", "added p99 ms", "p50 ms", "calls/s"],
            rows,
        )
        calls = paths[2].calls + args.rounds  # and the warm-up calls
        proxy = cpu[paths[1].label]
        print_table(
            "CPU per call, ms (from /proc; Conveyor's Postgres: the backends serving it; Redis: a private server)",
            ["path", "api", "worker", "postgres", "redis", "total"],
            [["LiteLLM proxy", f"{proxy.get('litellm', 0) * 1000 / calls:.2f}", "", "", "", ""]]
            + [
                [
                    path.label,
                    *(
                        f"{cpu[path.label].get(n, 0) * 1000 / calls:.2f}"
                        for n in ("api", "worker", "postgres", "redis")
                    ),
                    f"{sum(cpu[path.label].values()) * 1000 / calls:.2f}",
                ]
                for path in paths[2:]
            ],
        )
    finally:
        if litellm is not None:
            litellm.terminate()
            litellm.wait(timeout=15)
        stack.stop()
        if baseline is not None:
            baseline.stop()


if __name__ == "__main__":
    main()
