"""A real Conveyor stack for tests: its own Postgres schema and Redis database, the API served by
uvicorn on a free port, and real Celery worker processes, all pointed at a real fake provider."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
import uvicorn

from app.config import Settings
from app.embedded import free_port, wait_for_port
from app.main import create_app
from app.store.db import Database, run_migrations
from app.store.projects import ProjectRepository
from tests.helpers import eventually
from tests.launch import settings_for, spawn_conveyor, stack_env, wait_consuming
from tests.redis_dbs import new_redis_url, release_redis_url

ROOT = Path(__file__).resolve().parent.parent
PG_URL = os.environ.get("CONVEYOR_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")


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


class ApiServer:
    """uvicorn serving create_app(settings) in a background thread."""

    def __init__(self, settings: Settings) -> None:
        self.port = free_port()
        config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> None:
        self.thread.start()
        eventually(lambda: self.server.started, 20, what="the test API server started", poll=0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        if self.thread.is_alive():
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

    def spawn_worker(self, concurrency: int = 50) -> subprocess.Popen:
        """A worker process, not yet waited for (`wait_consuming`)."""
        output = None if os.environ.get("CONVEYOR_TEST_WORKER_LOGS") else subprocess.DEVNULL
        process = spawn_conveyor(self.env, "worker", "--concurrency", str(concurrency), "--no-migrate", output=output)
        self.workers.append(process)
        return process

    def start_worker(self, concurrency: int = 50) -> subprocess.Popen:
        """A worker process, once it consumes from its queue."""
        process = self.spawn_worker(concurrency)
        wait_consuming(self.settings.redis_url, [process])
        return process

    def kill_worker(self, process: subprocess.Popen) -> None:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)

    def stop(self) -> None:
        """Tear the stack down. Its workers are SIGKILLed: nothing of theirs outlives the stack (its Redis
        database is emptied before reuse, its schema dropped), and a warm shutdown costs a second each
        (tests/workers/test_crash_recovery.py checks that one finishes its calls in flight)."""
        for process in self.workers:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=10)
        self.api.stop()
        self.db.dispose()
        drop_pg_schema(self.schema)
        release_redis_url(self.settings.redis_url)


def start_stack(fake_provider_url: str, *, workers: int = 1, **overrides: str) -> Stack:
    """Migrate a fresh schema, start the API and `workers` worker processes.

    The workers boot (a second or more each) while the API starts in this process; the stack is
    returned once the API serves and every worker consumes."""
    schema, database_url = new_pg_schema()
    defaults = {
        "OPENAI_API_KEY": "sk-test",
        "ANTHROPIC_BASE_URL": fake_provider_url,
        "ANTHROPIC_API_KEY": "sk-ant-test",
        "CONVEYOR_API_KEYS": "",
        "CONVEYOR_MAX_RETRY_AFTER": "2",
        "CONVEYOR_MAX_BODY_BYTES": "1000000",
        # Each engine keeps up to this many Postgres connections (and as many again in overflow), in the
        # API and in each worker; at the default 20, two pytest processes (make test runs two) with a
        # stack or two each went past Postgres's default max_connections of 100.
        "CONVEYOR_DB_POOL_SIZE": "5",
    }
    env = stack_env(database_url, new_redis_url(), fake_provider_url, **{**defaults, **overrides})
    settings = settings_for(env)
    run_migrations(settings.database_url)
    stack = Stack(settings, env, ApiServer(settings), Database(settings.database_url), schema)
    try:
        spawned = [stack.spawn_worker() for _ in range(workers)]
        stack.api.start()
        wait_consuming(settings.redis_url, spawned)
    except BaseException:
        stack.stop()
        raise
    return stack


__all__ = ["Stack", "start_stack", "new_pg_schema", "drop_pg_schema", "new_redis_url", "wait_for_port"]
