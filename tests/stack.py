"""A real Conveyor stack for tests: its own Postgres schema and Redis database, the API served by
uvicorn on a free port, and real Celery worker processes, all pointed at a real fake provider."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
import redis
import uvicorn

from app.config import Settings
from app.embedded import free_port, wait_for_port
from app.main import create_app
from app.store import keys
from app.store.db import Database, run_migrations
from app.store.projects import ProjectRepository

ROOT = Path(__file__).resolve().parent.parent
PG_URL = os.environ.get("CONVEYOR_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_BASE = os.environ.get("CONVEYOR_TEST_REDIS_URL", "redis://127.0.0.1:6379")
# Started at a random database: test runs in other checkouts on this Redis would otherwise all begin
# at database 1, and one run's workers would take (and lose) the other's messages.
_REDIS_DB_ORDER = random.sample(range(1, 16), 15)
_redis_dbs = iter(_REDIS_DB_ORDER)


def new_pg_schema() -> tuple[str, str]:
    """Create an empty schema; return (name, SQLAlchemy URL whose search_path is that schema)."""
    name = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{name}"')
    base = PG_URL.replace("postgresql://", "postgresql+psycopg://", 1)
    sep = "&" if "?" in base else "?"
    return name, f"{base}{sep}options=-csearch_path%3D{name}"


def drop_pg_schema(name: str) -> None:
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


def new_redis_url() -> str:
    """A Redis database of its own (1-15, cycled), emptied before use."""
    global _redis_dbs
    try:
        index = next(_redis_dbs)
    except StopIteration:
        _redis_dbs = iter(_REDIS_DB_ORDER)
        index = next(_redis_dbs)
    url = f"{REDIS_BASE}/{index}"
    redis.Redis.from_url(url).flushdb()
    return url


class ApiServer:
    """uvicorn serving create_app(settings) in a background thread."""

    def __init__(self, settings: Settings) -> None:
        self.port = free_port()
        config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("test API server did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@dataclass
class Stack:
    settings: Settings
    env: dict[str, str]
    api: ApiServer
    db: Database
    schema: str
    workers: list[subprocess.Popen] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.api.port}"

    @property
    def v2(self) -> str:
        return self.url + "/v2"

    def new_key(self, project: str | None = None) -> str:
        """A key for a fresh project: tests sharing a stack never see each other's data."""
        return ProjectRepository(self.db).create_key(project or f"p-{uuid.uuid4().hex[:8]}")

    def client(self, key: str, timeout: float = 60) -> httpx.Client:
        return httpx.Client(base_url=self.v2, headers={"Authorization": f"Bearer {key}"}, timeout=timeout)

    def start_worker(self, concurrency: int = 50) -> subprocess.Popen:
        log = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process
        if os.environ.get("CONVEYOR_TEST_WORKER_LOGS"):
            log = None
        process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "worker", "--concurrency", str(concurrency), "--no-migrate"],
            env={**os.environ, **self.env},
            cwd=ROOT,
            stdout=log,
            stderr=log,
        )
        self.workers.append(process)
        self._wait_worker_ready(process)
        return process

    def _wait_worker_ready(self, process: subprocess.Popen, timeout: float = 30) -> None:
        """A worker announces itself in Redis once it consumes from its queue."""
        client = redis.Redis.from_url(self.settings.redis_url)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"worker exited with {process.returncode}; rerun with CONVEYOR_TEST_WORKER_LOGS=1")
            if client.keys(keys.worker_presence("*", process.pid)):
                return
            time.sleep(0.05)
        raise RuntimeError("worker did not start consuming within 30 s")

    def kill_worker(self, process: subprocess.Popen) -> None:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)

    def stop(self) -> None:
        for process in self.workers:
            if process.poll() is None:
                process.terminate()
        for process in self.workers:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        self.api.stop()
        self.db.dispose()
        drop_pg_schema(self.schema)


def start_stack(fake_provider_url: str, *, workers: int = 1, **overrides: str) -> Stack:
    """Migrate a fresh schema, start the API and `workers` worker processes."""
    schema, database_url = new_pg_schema()
    env = {
        "DATABASE_URL": database_url,
        "REDIS_URL": new_redis_url(),
        "OPENAI_BASE_URL": fake_provider_url + "/v1",
        "OPENAI_API_KEY": "sk-test",
        "ANTHROPIC_BASE_URL": fake_provider_url,
        "ANTHROPIC_API_KEY": "sk-ant-test",
        "CONVEYOR_FAKE_PROVIDER_URL": fake_provider_url,
        "CONVEYOR_DEFAULT_MODEL": "fake/default",
        "CONVEYOR_API_KEYS": "",
        "CONVEYOR_LOG_LEVEL": "WARNING",
        "CONVEYOR_MAX_RETRY_AFTER": "2",
        "CONVEYOR_MAX_BODY_BYTES": "1000000",
        **overrides,
    }
    with _patched_environ(env):
        settings = Settings(_env_file=None)
    run_migrations(settings.database_url)
    stack = Stack(settings, env, ApiServer(settings), Database(settings.database_url), schema)
    stack.api.start()
    for _ in range(workers):
        stack.start_worker()
    return stack


@contextlib.contextmanager
def _patched_environ(values: dict[str, str]):  # noqa: ANN202
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


__all__ = ["Stack", "start_stack", "new_pg_schema", "drop_pg_schema", "new_redis_url", "wait_for_port"]
