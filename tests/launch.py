"""Starting Conveyor as real processes, shared by the test stacks (tests/stack.py), the fault suite
(tests/faults/processes.py) and the benchmarks (bench/harness.py): the environment that points a
stack at its database, Redis and fake provider, its Settings, `conveyor` CLI processes, the wait
until a worker consumes, and stopping them all.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

import redis

from app.config import Settings
from app.store import keys

ROOT = Path(__file__).resolve().parent.parent


def stack_env(database_url: str, redis_url: str, fake_provider_url: str, **overrides: str) -> dict[str, str]:
    """The variables that point the API and workers at their database, Redis and the fake provider
    (as every provider: `fake/...` models, and OpenAI's base URL), with `overrides` on top."""
    return {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "OPENAI_BASE_URL": fake_provider_url + "/v1",
        "CONVEYOR_FAKE_PROVIDER_URL": fake_provider_url,
        "CONVEYOR_DEFAULT_MODEL": "fake/default",
        "CONVEYOR_LOG_LEVEL": "WARNING",
        **overrides,
    }


@contextlib.contextmanager
def patched_environ(values: dict[str, str]) -> Iterator[None]:
    """`values` set in os.environ while inside; what was there before is put back."""
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


def settings_for(env: dict[str, str]) -> Settings:
    """The Settings the processes started with `env` will read (no .env file)."""
    with patched_environ(env):
        return Settings(_env_file=None)


def spawn_conveyor(
    env: dict[str, str], *args: str, cwd: Path = ROOT, output: IO | int | None = subprocess.DEVNULL, **popen: object
) -> subprocess.Popen:
    """`python -m app.cli ARGS` with `env` over this process's environment."""
    return subprocess.Popen(
        [sys.executable, "-m", "app.cli", *args],
        env={**os.environ, **env},
        cwd=cwd,
        stdout=output,
        stderr=output,
        **popen,  # type: ignore[arg-type]
    )


def wait_consuming(redis_url: str, processes: Iterable[subprocess.Popen], timeout: float = 60) -> None:
    """Until every worker process consumes from its queue (each announces itself in Redis then).
    A worker that exits first fails the wait at once; `timeout` is generous for a loaded machine
    (a worker boot takes about 3 s of CPU)."""
    client = redis.Redis.from_url(redis_url)
    deadline = time.monotonic() + timeout
    try:
        for process in processes:
            while not client.keys(keys.worker_presence("*", process.pid)):
                if process.poll() is not None:
                    raise RuntimeError(
                        f"worker exited with {process.returncode}; rerun with CONVEYOR_TEST_WORKER_LOGS=1"
                    )
                if time.monotonic() > deadline:
                    raise RuntimeError(f"worker did not start consuming within {timeout} s")
                time.sleep(0.02)
    finally:
        client.close()


def stop_processes(processes: Iterable[subprocess.Popen], timeout: float = 15) -> None:
    """SIGTERM to each one still running, then wait for all (a SIGKILL for one that outstays `timeout`)."""
    processes = list(processes)
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
