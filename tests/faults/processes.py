"""Real processes for the fault suite: a private redis-server the test may stop and start again, the
API and workers via the `conveyor` CLI (each an OS process of its own, as in production), all on a
fresh Postgres schema (the shared server, or a private cluster the test owns: postgres.py)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

from app.config import Settings
from app.embedded import free_port, wait_for_port
from app.store.db import Database, run_migrations
from app.store.projects import ProjectRepository, generate_key
from tests.launch import settings_for, spawn_conveyor, stack_env, wait_consuming

LOGS = os.environ.get("CONVEYOR_TEST_WORKER_LOGS")


def _output(name: str, directory: Path | None):  # noqa: ANN202 - a file or DEVNULL
    if directory is not None:
        return open(directory / f"{name}.log", "ab")  # noqa: SIM115 - lives as long as the process
    return subprocess.DEVNULL


class PrivateRedis:
    """A redis-server on a free port with its own directory; `restart()` stops it (SIGTERM, as a
    deploy or `docker restart` does) and starts it again on the same port and data (append-only file,
    as docker-compose.yml configures Redis)."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="conveyor-redis-"))
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary, "the fault suite needs redis-server on PATH"
        command = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir)]
        command += ["--save", "", "--appendonly", "yes", "--appendfsync", "always", "--logfile", "redis.log"]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port, timeout=10)
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 10
        while True:  # the port opens before the append-only file is loaded
            try:
                client.ping()
                return
            except redis.BusyLoadingError:
                assert time.monotonic() < deadline, "redis-server kept loading its data"
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=15)

    def restart(self, down_seconds: float = 0.0) -> None:
        self.stop()
        time.sleep(down_seconds)  # an outage of this length, not a wait for a state
        self.start()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@dataclass
class ProcessStack:
    """API and workers as `conveyor` processes on `env` (DATABASE_URL, REDIS_URL, provider URLs)."""

    env: dict[str, str]
    settings: Settings
    db: Database
    logs: Path | None  # with CONVEYOR_TEST_WORKER_LOGS: each process's output, kept after the test
    api_url: str = ""
    api: subprocess.Popen | None = None
    workers: list[subprocess.Popen] = field(default_factory=list)

    def _spawn(self, name: str, *args: str) -> subprocess.Popen:
        # start_new_session: a Ctrl-C on the test run reaches pytest only; we stop them
        return spawn_conveyor(self.env, *args, output=_output(name, self.logs), start_new_session=True)

    def start_api(self) -> None:
        port = free_port()
        self.api = self._spawn("api", "api", "--port", str(port), "--no-migrate")
        self.api_url = f"http://127.0.0.1:{port}"

    def spawn_worker(self, concurrency: int = 200) -> subprocess.Popen:
        process = self._spawn(
            f"worker-{len(self.workers)}", "worker", "--concurrency", str(concurrency), "--no-migrate"
        )
        self.workers.append(process)
        return process

    def start_worker(self, concurrency: int = 200) -> subprocess.Popen:
        process = self.spawn_worker(concurrency)
        self.wait_ready()
        return process

    def wait_ready(self) -> None:
        """Until the API listens and every live worker consumes (it announces itself in Redis)."""
        wait_for_port(int(self.api_url.rsplit(":", 1)[1]), timeout=30)
        wait_consuming(self.settings.redis_url, [p for p in self.workers if p.returncode is None])

    def kill(self, process: subprocess.Popen) -> None:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)

    def new_project(self) -> tuple[str, str]:
        """(project id, API key) of a fresh project."""
        projects = ProjectRepository(self.db)
        project = projects.ensure_project(f"faults-{os.urandom(4).hex()}")
        key = generate_key()
        projects.add_key(project, key)
        return project.id, key

    def stop(self) -> None:
        """SIGKILL, as tests/stack.py's stacks are stopped: what the processes leave is the test's own."""
        for process in [*self.workers, *([self.api] if self.api else [])]:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=10)
        self.db.dispose()


def start_process_stack(
    database_url: str, redis_url: str, fake_provider_url: str, *, workers: int = 1, **overrides: str
) -> ProcessStack:
    """Migrate the database, then start the API and `workers` workers side by side."""
    defaults = {"OPENAI_API_KEY": "sk-test", "CONVEYOR_API_KEYS": "", "CONVEYOR_DB_POOL_SIZE": "5"}  # as tests/stack.py
    env = stack_env(database_url, redis_url, fake_provider_url, **{**defaults, **overrides})
    settings = settings_for(env)
    run_migrations(settings.database_url)
    logs = Path(tempfile.mkdtemp(prefix="conveyor-fault-logs-")) if LOGS else None
    if LOGS:
        print(f"fault suite logs in {logs}", file=sys.stderr)
    stack = ProcessStack(env=env, settings=settings, db=Database(settings.database_url), logs=logs)
    stack.start_api()
    for _ in range(workers):
        stack.spawn_worker()
    stack.wait_ready()
    return stack
