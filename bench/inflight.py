"""How many provider calls one worker process holds in flight, memory per in-flight call, calls per
second, against the floor of the same calls made straight from one asyncio process, in one run.

    .venv/bin/python -m bench.inflight [--jobs 1000] [--latency-ms 2000] [--slots 1100] [--baseline REV]

With `--baseline REV` a worker running that revision's code (a git worktree of it) is measured first,
on a stack of its own, and printed as a row above this code's.

Jobs are written and enqueued the way the API does it (job row, then the Celery message) while the
worker runs, so the figure is the worker's: one process, jobs as coroutines on one event loop (the
LoopPool), one pooled HTTP client. CPU per call is what bounds the in-flight figure at short
latencies: a process (one core, by the GIL) that spends c ms of CPU starting a call starts at most
1000/c calls a second, so at latency L it holds about L × 1000/c calls at once, however many slots
it has. "start CPU" is the worker's CPU per call until every call is in flight (nothing has finished
yet at 2 s latency only if starting takes under 2 s).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import redis
from sqlalchemy import func, insert, select

from app.engine.task import ModelSpec, TaskSpec, task_to_dict
from app.queue import INTERACTIVE_QUEUE, RUN_JOB, task_message
from app.store.projects import ProjectRepository
from app.store.tables import Job, JobStatus, new_ids
from bench.harness import ROOT, checkout, print_table, rss_kib, start_bench_stack

DIRECT_SCRIPT = """
import asyncio, json, sys, time
from app.config import Settings
from app.providers.base import CompletionRequest, Message
from app.providers.registry import ProviderRegistry

def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])

async def main(n, model):
    registry = ProviderRegistry(Settings(_env_file=None))
    resolved = registry.resolve(model)
    idle = rss()
    peak = [idle]
    async def sample():
        while True:
            peak[0] = max(peak[0], rss()); await asyncio.sleep(0.05)
    sampler = asyncio.create_task(sample())
    start = time.perf_counter()
    cpu = time.process_time()
    await asyncio.gather(*(resolved.provider.complete(CompletionRequest(
        model=resolved.model_id, messages=(Message("user", f"q{i}"),))) for i in range(n)))
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu
    sampler.cancel()
    await registry.aclose()
    print(json.dumps({"elapsed": elapsed, "cpu_s": cpu, "idle_kib": idle, "peak_kib": peak[0]}))

asyncio.run(main(int(sys.argv[1]), sys.argv[2]))
"""


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def submit_jobs(stack, n: int, model: str) -> list[str]:
    """Write the rows in one transaction, then enqueue them in one pipeline, with the message the API
    sends (app/queue.py): jobs arrive faster than they finish, so the figure is the worker's."""
    project = ProjectRepository(stack.db).ensure_project("bench-inflight")
    ids = new_ids(n)
    # Core, naming only the columns every revision's schema has: a `--baseline` stack runs an older
    # revision's migrations, and the ORM would write the columns added since.
    rows = [
        {
            "id": job_id,
            "project_id": project.id,
            "task": task_to_dict(TaskSpec(name="inflight", input=f"q{i}", models=(ModelSpec(model),))),
            "trace_id": f"t{i}",
            "status": JobStatus.queued,
        }
        for i, job_id in enumerate(ids)
    ]
    with stack.db.connection() as connection:
        connection.execute(insert(Job.__table__), rows)
    client = redis.Redis.from_url(stack.settings.redis_url)
    pipe = client.pipeline(transaction=False)
    for job_id in ids:
        pipe.lpush(INTERACTIVE_QUEUE, task_message(RUN_JOB, [job_id], INTERACTIVE_QUEUE))
    pipe.execute()
    return ids


def finished_count(stack, ids: list[str]) -> int:
    final = [JobStatus.succeeded, JobStatus.failed]
    with stack.db.transaction() as session:
        return session.scalar(select(func.count()).select_from(Job).where(Job.status.in_(final)))


def run_direct(stack, n: int, model: str) -> dict:
    output = subprocess.run(
        [sys.executable, "-c", DIRECT_SCRIPT, str(n), model],
        env={**stack.env, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(output.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--latency-ms", default="2000,10000", help="comma-separated provider latencies")
    parser.add_argument("--slots", type=int, default=1100, help="worker job slots (--concurrency)")
    parser.add_argument("--baseline", help="also measure this git revision's worker (a worktree of it)")
    parser.add_argument(
        "--lease-seconds", type=int, default=60, help="CONVEYOR_JOB_LEASE_SECONDS: leases are renewed every third of it"
    )
    args = parser.parse_args()
    contenders = [(f"conveyor {args.baseline}", checkout(args.baseline))] if args.baseline else []
    contenders.append(("conveyor worker", ROOT))
    for latency_ms in (int(x) for x in args.latency_ms.split(",")):
        measured = [
            measure_worker(label, root, args.jobs, latency_ms, args.slots, args.lease_seconds)
            for label, root in contenders
        ]
        direct_row, floor_row = measure_direct(args.jobs, latency_ms)
        print_table(
            f"{args.jobs} calls at {latency_ms} ms provider latency: one worker process "
            f"({args.slots} job slots, {args.lease_seconds} s leases) vs. one asyncio process calling the provider "
            "directly",
            HEADERS,
            [*(row for row, _ in measured), direct_row, floor_row],
        )
        for row, enqueued_s in measured:
            print(f"  ({row[0]}: writing and enqueueing the {args.jobs} jobs took {enqueued_s:.2f} s of its wall time)")


HEADERS = [
    "",
    "peak in flight",
    "wall s",
    "calls/s",
    "s to peak",
    "start CPU ms/call",
    "CPU ms/call",
    "Postgres CPU ms/call",
    "RSS idle MiB",
    "RSS peak MiB",
    "KiB per in-flight call",
]


def per_call_kib(peak: int, idle: int, n: int) -> str:
    return f"{(peak - idle) / max(n, 1):.0f}"


def measure_worker(
    label: str, root: Path, jobs: int, latency_ms: int, slots: int, lease_seconds: int = 60
) -> tuple[list[object], float]:
    """One worker process of the code at `root` on a stack of its own: its row of the table, and the
    seconds that writing and enqueueing the jobs took of its wall time."""
    model = f"fake/inflight?latency_ms={latency_ms}"
    stack = start_bench_stack(root=root, CONVEYOR_JOB_LEASE_SECONDS=str(lease_seconds))
    try:
        worker = stack.start_worker(concurrency=slots)
        time.sleep(1.0)
        idle_kib = rss_kib(worker.pid)
        stack.reset_fake()
        peak_kib = [idle_kib]
        stop = threading.Event()
        # When the provider first held its peak, and the worker's CPU until then.
        started: dict[str, float] = {"in_flight": 0, "at": 0.0, "cpu": 0.0}

        def sample() -> None:
            while not stop.is_set():
                peak_kib[0] = max(peak_kib[0], rss_kib(worker.pid))
                in_flight = stack.fake_stats().get("in_flight", 0)
                if in_flight > started["in_flight"]:
                    started.update(in_flight=in_flight, at=time.perf_counter(), cpu=cpu_seconds(worker.pid))
                time.sleep(0.05)

        cpu_before = cpu_seconds(worker.pid)
        postgres = stack.cpu_meter()  # the worker's database backends (claims, renewals, endings)
        postgres.start()
        submitted_at = time.perf_counter()
        threading.Thread(target=sample, daemon=True).start()
        ids = submit_jobs(stack, jobs, model)
        enqueued_s = time.perf_counter() - submitted_at
        while finished_count(stack, ids) < len(ids):
            time.sleep(0.1)
        elapsed = time.perf_counter() - submitted_at
        worker_cpu_ms = (cpu_seconds(worker.pid) - cpu_before) / jobs * 1000
        postgres_cpu_ms = postgres.stop().get("postgres", 0.0) / jobs * 1000
        stop.set()
        conveyor_peak = stack.fake_stats()["peak_in_flight"]
        row: list[object] = [
            label,
            conveyor_peak,
            f"{elapsed:.2f}",
            f"{jobs / elapsed:.0f}",
            f"{started['at'] - submitted_at:.2f}",
            f"{(started['cpu'] - cpu_before) / max(started['in_flight'], 1) * 1000:.2f}",
            f"{worker_cpu_ms:.1f}",
            f"{postgres_cpu_ms:.2f}",
            f"{idle_kib / 1024:.0f}",
            f"{peak_kib[0] / 1024:.0f}",
            per_call_kib(peak_kib[0], idle_kib, conveyor_peak),
        ]
        return row, enqueued_s
    finally:
        stack.stop()


def measure_direct(jobs: int, latency_ms: int) -> tuple[list[object], list[object]]:
    """The same calls from one plain asyncio process through this code's provider adapter, and the floor."""
    model = f"fake/inflight?latency_ms={latency_ms}"
    stack = start_bench_stack()
    try:
        stack.reset_fake()
        direct = run_direct(stack, jobs, model)
        direct_peak = stack.fake_stats()["peak_in_flight"]
    finally:
        stack.stop()
    floor_s = latency_ms / 1000
    direct_row = [
        "direct asyncio",
        direct_peak,
        f"{direct['elapsed']:.2f}",
        f"{jobs / direct['elapsed']:.0f}",
        "",
        "",
        f"{direct['cpu_s'] / jobs * 1000:.1f}",
        "",
        f"{direct['idle_kib'] / 1024:.0f}",
        f"{direct['peak_kib'] / 1024:.0f}",
        per_call_kib(direct["peak_kib"], direct["idle_kib"], direct_peak),
    ]
    return direct_row, ["floor", jobs, f"{floor_s:.2f}", f"{jobs / floor_s:.0f}", "", "", "", "", "", "", ""]


if __name__ == "__main__":
    main()
