"""Processes for benchmarks: the fake provider, the API and workers as separate OS processes, on a
fresh Postgres schema and Redis database, the way they run in production."""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from app.config import Settings
from app.embedded import free_port, wait_for_port
from app.store.db import Database, run_migrations
from app.store.projects import ProjectRepository
from bench.proc_cpu import CpuMeter, postgres_backends
from tests.fakeprovider import start_fake_provider_process
from tests.launch import settings_for, spawn_conveyor, stack_env, stop_processes, wait_consuming
from tests.redis_dbs import new_redis_url
from tests.stack import PG_URL, drop_pg_schema, new_pg_schema

ROOT = Path(__file__).resolve().parent.parent


def rss_kib(pid: int) -> int:
    """Resident memory of a process, from /proc (KiB)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def percentile(values: Sequence[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


def summary_ms(samples: Sequence[float]) -> dict[str, float]:
    return {
        "p50": percentile(samples, 50) * 1000,
        "p99": percentile(samples, 99) * 1000,
        "mean": statistics.fmean(samples) * 1000,
    }


@dataclass
class BenchStack:
    env: dict[str, str]
    settings: Settings
    schema: str
    fake_url: str
    api_url: str = ""
    processes: list[subprocess.Popen] = field(default_factory=list)
    db: Database | None = None
    application_name: str = ""  # the Postgres application_name of the API's and workers' connections
    redis_pid: int | None = None  # a private redis-server's, so its CPU is Conveyor's alone
    api_pid: int | None = None
    worker_pids: list[int] = field(default_factory=list)
    root: Path = ROOT  # whose code the API and workers run (another revision's checkout for a baseline)

    def cpu_meter(self) -> CpuMeter:
        """CPU of the API, the workers, their Postgres backends and (private) Redis."""
        groups = {
            "api": lambda: [self.api_pid] if self.api_pid else [],
            "worker": lambda: list(self.worker_pids),
            "postgres": lambda: postgres_backends(PG_URL, self.application_name),
        }
        if self.redis_pid:
            groups["redis"] = lambda: [self.redis_pid]
        return CpuMeter(groups)

    def spawn(self, *args: str) -> subprocess.Popen:
        process = spawn_conveyor(self.env, *args, cwd=self.root)
        self.processes.append(process)
        return process

    def start_api(self) -> None:
        port = free_port()
        self.api_pid = self.spawn("api", "--port", str(port), "--no-migrate").pid
        wait_for_port(port, timeout=30)
        self.api_url = f"http://127.0.0.1:{port}"

    def start_worker(self, concurrency: int) -> subprocess.Popen:
        process = self.spawn("worker", "--concurrency", str(concurrency), "--no-migrate")
        self.worker_pids.append(process.pid)
        wait_consuming(self.settings.redis_url, [process], timeout=60)
        return process

    def new_key(self) -> str:
        if self.root != ROOT:  # that revision's schema is its own: let its CLI write the key
            command = [sys.executable, "-m", "app.cli", "keys", "create", "--project", "bench"]
            output = subprocess.run(
                command, env={**os.environ, **self.env}, cwd=self.root, capture_output=True, text=True, check=True
            )
            return output.stdout.strip().split()[-1]
        return ProjectRepository(self.db).create_key("bench")

    def fake_stats(self) -> dict:
        return httpx.get(self.fake_url + "/stats").json()

    def reset_fake(self) -> None:
        httpx.post(self.fake_url + "/stats/reset").raise_for_status()

    def stop(self) -> None:
        stop_processes(reversed(self.processes), timeout=15)
        if self.db:
            self.db.dispose()
        drop_pg_schema(self.schema)


def start_private_redis() -> tuple[subprocess.Popen, str] | None:
    """A redis-server of the benchmark's own (no persistence), when one is on PATH."""
    binary = shutil.which("redis-server")
    if binary is None:
        return None
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        + ["--dir", tempfile.gettempdir()],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    wait_for_port(port)
    return process, f"redis://127.0.0.1:{port}/0"


def checkout(revision: str) -> Path:
    """A detached worktree of `revision` (made once, reused), for running a baseline beside this code."""
    sha = subprocess.run(
        ["git", "rev-parse", "--short", revision], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    path = Path(tempfile.gettempdir()) / f"conveyor-baseline-{sha}"
    if not path.exists():
        subprocess.run(["git", "worktree", "add", "--detach", str(path), sha], cwd=ROOT, check=True)
    return path


def start_bench_stack(*, root: Path = ROOT, **overrides: str) -> BenchStack:
    overrides = {**{k: v for k, v in os.environ.items() if k.startswith("CONVEYOR_")}, **overrides}
    fake_port = free_port()
    fake = start_fake_provider_process(fake_port)
    fake_url = f"http://127.0.0.1:{fake_port}"
    schema, database_url = new_pg_schema()
    application_name = f"conveyor-bench-{uuid.uuid4().hex[:8]}"
    database_url += f"&application_name={application_name}"
    redis = start_private_redis()
    redis_url = redis[1] if redis else new_redis_url()
    env = stack_env(
        database_url,
        redis_url,
        fake_url,
        **{"OPENAI_API_KEY": "sk-bench", "CONVEYOR_DEFAULT_MODEL": "fake/bench", **overrides},
    )
    settings = settings_for(env)
    if root == ROOT:
        run_migrations(settings.database_url)
    else:  # that revision's schema: its own migrations
        subprocess.run([sys.executable, "-m", "app.cli", "migrate"], env={**os.environ, **env}, cwd=root, check=True)
    stack = BenchStack(
        env=env, settings=settings, schema=schema, fake_url=fake_url, application_name=application_name, root=root
    )
    if redis:
        stack.processes.append(redis[0])
        stack.redis_pid = redis[0].pid
    stack.processes.append(fake)
    # The benchmark's own connections are not Conveyor's: they go without the application name.
    stack.db = Database(database_url.replace(f"&application_name={application_name}", ""))
    return stack


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=False)]
    print(f"\n{title}")
    print("  " + "  ".join(str(h).ljust(w) for h, w in zip(header, widths, strict=False)))
    for row in rows:
        print("  " + "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=False)))
