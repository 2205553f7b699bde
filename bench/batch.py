"""Batches of 1,000, 10,000 and 100,000 items through the real stack at a provider latency of 200 ms and
a global limit of 500 requests/s: time to accept, time to finish against the floor, peak memory of API
and workers, Redis memory, status query latency, items/s, side by side, so cost per item can be compared.

    .venv/bin/python -m bench.batch [--items 100000,10000,1000] [--latency-ms 200] [--rps 500]
                                    [--workers 2] [--slots 300] [--baseline REV]

Each size runs on a fresh stack (bench/harness.py: the fake provider, the API and the workers as
separate processes on a fresh Postgres schema) with a private `redis-server`, so peak memory figures
belong to that run alone. The fake provider enforces a limit of its own 10 % above `--rps`: its 429
count shows whether the limiter ever let a burst through. The file is uploaded the way `conveyor batch
submit` does it (app/batch_client.py, streamed multipart). The time to finish runs from the upload's
answer to the batch's own `finished_at` (same machine, same clock); the time a client polling every
0.2 s saw it end is printed beside it. The 100,000 run takes a few minutes.
With `--baseline REV` each size also runs on that revision's code (a git worktree of it: its API and
workers), first, and its column stands beside this code's.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import httpx
import redis
from sqlalchemy import func, select

from app.batch_client import Batch, BatchClient
from app.batch_display import ProgressDisplay
from app.embedded import free_port, wait_for_port
from app.store import keys
from app.store.tables import Job
from bench.harness import ROOT, BenchStack, checkout, percentile, print_table, rss_kib, start_bench_stack
from tests.fakeprovider import start_fake_provider_process

INPUT_SCHEMA = {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}
OUTPUT_SCHEMA = {"type": "object", "properties": {"label": {"type": "string"}}, "required": ["label"]}
STALL_SECONDS = 300  # a batch that ends no item for this long is stuck: stop instead of waiting forever


@dataclass
class PeakSampler:
    """Peak RSS of a set of processes, sampled every 0.2 s in a thread."""

    pids: dict[str, list[int]]
    peak_kib: dict[str, int] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.idle_kib = {role: max(rss_kib(pid) for pid in pids) for role, pids in self.pids.items()}
        self.peak_kib = dict(self.idle_kib)
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            for role, pids in self.pids.items():
                self.peak_kib[role] = max(self.peak_kib[role], *(rss_kib(pid) for pid in pids))

    def stop(self) -> None:
        self._stop.set()


@dataclass
class Run:
    label: str  # "REV: " for a baseline revision's run, "" for this code's
    items: int
    accept_s: float
    run_s: float  # from the upload's answer to the batch's own `finished_at`
    seen_s: float  # from the upload's answer to a client polling every 0.2 s seeing the batch ended
    floor_s: float
    batch: Batch
    status_running_ms: list[float]
    status_end_ms: list[float]
    idle_kib: dict[str, int]
    peak_kib: dict[str, int]
    redis_base_bytes: int
    redis_peak_bytes: int
    provider: dict
    reclaimed: int  # items claimed by a worker more than once (a lease expired, a message redelivered)


def start_redis() -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no", "--bind", "127.0.0.1"],
        stdout=subprocess.DEVNULL,
    )
    wait_for_port(port, timeout=10)
    return process, f"redis://127.0.0.1:{port}/0"


def start_workers(stack: BenchStack, count: int, slots: int) -> list[int]:
    """Workers on the batch queue only (`--queues batch`), or on every queue if the flag is unknown."""
    client = redis.Redis.from_url(stack.settings.redis_url)
    pids = []
    for _ in range(count):
        for extra in (["--queues", "batch"], []):
            process = stack.spawn("worker", "--concurrency", str(slots), "--no-migrate", *extra)
            deadline = time.monotonic() + 60
            while not client.keys(keys.worker_presence("*", process.pid)) and process.poll() is None:
                if time.monotonic() > deadline:
                    raise RuntimeError("benchmark worker did not start")
                time.sleep(0.1)
            if process.poll() is None:
                pids.append(process.pid)
                break
    return pids


def write_items(path: Path, n: int) -> None:
    with path.open("w") as out:
        for i in range(n):
            out.write(json.dumps({"custom_id": f"item-{i:06d}", "input": {"text": f"review number {i}"}}) + "\n")


def reclaimed_items(stack: BenchStack, batch_id: str) -> int:
    with stack.db.transaction() as session:
        query = select(func.count()).select_from(Job).where(Job.batch_id == batch_id, Job.delivery_attempts > 1)
        return session.scalar(query)


def timed_get(client: BatchClient, batch_id: str) -> tuple[Batch, float]:
    started = time.perf_counter()
    batch = client.get(batch_id)
    return batch, (time.perf_counter() - started) * 1000


def measure(items: int, args: argparse.Namespace, workdir: Path, label: str = "", root: Path = ROOT) -> Run:
    redis_process, redis_url = start_redis()
    fake_port = free_port()
    fake = start_fake_provider_process(fake_port, rate_limit_per_second=args.rps * 1.1)
    fake_url = f"http://127.0.0.1:{fake_port}"
    limits = json.dumps({"fake/*": {"rpm": args.rps * 60}})
    stack = start_bench_stack(
        root=root, REDIS_URL=redis_url, CONVEYOR_FAKE_PROVIDER_URL=fake_url, CONVEYOR_RATE_LIMITS=limits
    )
    stack.processes.append(fake)
    try:
        stack.start_api()
        api_pid = stack.processes[-1].pid
        worker_pids = start_workers(stack, args.workers, args.slots)
        key = stack.new_key()
        model = f"fake/batch?latency_ms={args.latency_ms}"
        body = {"name": "bench-batch", "instructions": "Label the review.", "model": model}
        body |= {"input_schema": INPUT_SCHEMA, "output_schema": OUTPUT_SCHEMA}
        with httpx.Client(base_url=stack.api_url + "/v2", headers={"Authorization": f"Bearer {key}"}) as http:
            http.post("/functions", json=body).raise_for_status()
        path = workdir / f"items-{items}.jsonl"
        write_items(path, items)
        store = redis.Redis.from_url(redis_url)
        time.sleep(1.0)  # let the workers settle before the idle figures
        redis_base = int(store.info("memory")["used_memory"])
        sampler = PeakSampler({"api": [api_pid], "worker": worker_pids})

        with BatchClient(stack.api_url, key) as client:
            function_id = client.function_id("bench-batch")
            started = time.perf_counter()
            batch = client.submit(path, function_id=function_id).batch
            accepted, accepted_at = time.perf_counter(), time.time()
            running_ms: list[float] = []
            progress = ProgressDisplay(sys.stdout, interactive=False, log_every=15.0)
            last_done, last_change = -1, time.perf_counter()
            while not batch.ended:
                time.sleep(0.2)
                batch, ms = timed_get(client, batch.id)
                running_ms.append(ms)
                progress.update(batch)
                if batch.counts.done != last_done:
                    last_done, last_change = batch.counts.done, time.perf_counter()
                elif time.perf_counter() - last_change > STALL_SECONDS:
                    raise RuntimeError(f"the {items}-item batch made no progress for {STALL_SECONDS} s: {batch.counts}")
            finished = time.perf_counter()
            sampler.stop()
            end_ms = [timed_get(client, batch.id)[1] for _ in range(50)]
        return Run(
            label=label,
            items=items,
            accept_s=accepted - started,
            run_s=datetime.fromisoformat(batch.finished_at or "").timestamp() - accepted_at,
            seen_s=finished - accepted,
            floor_s=items / args.rps + args.latency_ms / 1000,
            batch=batch,
            status_running_ms=running_ms,
            status_end_ms=end_ms,
            idle_kib=sampler.idle_kib,
            peak_kib=sampler.peak_kib,
            redis_base_bytes=redis_base,
            redis_peak_bytes=int(store.info("memory")["used_memory_peak"]),
            provider=httpx.get(fake_url + "/stats").json(),
            reclaimed=reclaimed_items(stack, batch.id),
        )
    finally:
        stack.stop()
        redis_process.terminate()
        redis_process.wait(timeout=10)


def report(runs: list[Run], args: argparse.Namespace) -> None:
    def row(label: str, value) -> list[str]:  # noqa: ANN001
        return [label, *(value(run) for run in runs)]

    def mib(kib: int) -> str:
        return f"{kib / 1024:.0f}"

    rows = [
        row("items succeeded / failed", lambda r: f"{r.batch.counts.succeeded:,} / {r.batch.counts.failed:,}"),
        row("provider requests (429s)", lambda r: f"{r.provider['requests_total']:,} ({r.provider['sent_429']})"),
        row("items claimed more than once", lambda r: f"{r.reclaimed:,}"),
        row("provider peak in flight", lambda r: f"{r.provider['peak_in_flight']}"),
        row("time to accept, s", lambda r: f"{r.accept_s:.2f}"),
        row("  per 1,000 items, ms", lambda r: f"{1e6 * r.accept_s / r.items:.0f}"),
        row("time to finish, s", lambda r: f"{r.run_s:.1f}"),
        row("  seen by a client polling at 0.2 s", lambda r: f"{r.seen_s:.1f}"),
        row("floor (items/rate + latency), s", lambda r: f"{r.floor_s:.1f}"),
        row("finish / floor", lambda r: f"{r.run_s / r.floor_s:.2f}"),
        row("items/s", lambda r: f"{r.items / r.run_s:.0f}"),
        row("API RSS idle -> peak, MiB", lambda r: f"{mib(r.idle_kib['api'])} -> {mib(r.peak_kib['api'])}"),
        row("worker RSS idle -> peak, MiB", lambda r: f"{mib(r.idle_kib['worker'])} -> {mib(r.peak_kib['worker'])}"),
        row("Redis used_memory peak, MiB", lambda r: f"{r.redis_peak_bytes / 2**20:.1f}"),
        row("  growth per item, bytes", lambda r: f"{(r.redis_peak_bytes - r.redis_base_bytes) / r.items:.0f}"),
        row("status p50/p99 while running, ms", lambda r: _p50_p99(r.status_running_ms)),
        row("status p50/p99 at the end, ms", lambda r: _p50_p99(r.status_end_ms)),
    ]
    print_table(
        f"Batches at {args.latency_ms} ms provider latency, limit {args.rps} requests/s "
        f"({args.workers} workers x {args.slots} job slots)",
        ["", *(f"{run.label}{run.items:,} items" for run in runs)],
        rows,
    )


def _p50_p99(samples: list[float]) -> str:
    return f"{percentile(samples, 50):.1f} / {percentile(samples, 99):.1f}" if samples else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", default="100000,10000,1000", help="comma-separated batch sizes")
    parser.add_argument("--latency-ms", type=int, default=200)
    parser.add_argument("--rps", type=int, default=500, help="the global limit (CONVEYOR_RATE_LIMITS rpm / 60)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--slots", type=int, default=300, help="job slots (--concurrency) per worker")
    parser.add_argument("--baseline", help="also run each size on this git revision (a worktree of it), first")
    args = parser.parse_args()
    if not shutil.which("redis-server"):
        raise SystemExit("bench.batch needs redis-server on PATH (a private one per run, for clean memory figures)")
    sizes = sorted(int(n) for n in args.items.split(","))
    runs = []
    with tempfile.TemporaryDirectory() as workdir:
        contenders = [(f"{args.baseline}: ", checkout(args.baseline))] if args.baseline else []
        contenders.append(("", ROOT))
        for items in sizes:
            for label, root in contenders:
                print(f"running a batch of {items:,} items{f' on {label[:-2]}' if label else ''}...", flush=True)
                runs.append(measure(items, args, Path(workdir), label, root))
                report(runs[-1:], args)  # each run's figures as soon as they exist
    report(runs, args)


if __name__ == "__main__":
    main()
