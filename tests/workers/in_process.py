"""A worker runtime for running a JobRunner inside the test process (no broker, no worker process)."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from app.config import Settings
from app.store.db import Database, run_migrations
from app.store.jobs import JobRepository
from workers.event_loop import EventLoopThread


@contextmanager
def in_process_runtime(directory: Path, **parts: Any) -> Iterator[SimpleNamespace]:
    """A SQLite file in `directory`, the event loop and blocking threads; `parts` adds or replaces
    members (settings, redis, cancels...)."""
    url = f"sqlite:///{directory / 'c.sqlite3'}"
    run_migrations(url)
    db = Database(url)
    loop = EventLoopThread()
    blocking = ThreadPoolExecutor(max_workers=2)
    defaults = {
        "settings": Settings(_env_file=None),
        "jobs": JobRepository(db),
        "db": db,
        "loop": loop,
    }
    try:
        yield SimpleNamespace(**{**defaults, "blocking": blocking, **parts})
    finally:
        blocking.shutdown()
        loop.stop()
        db.dispose()
