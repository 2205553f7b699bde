"""CPU time per process, from /proc: what a call costs each of Conveyor's processes.

The bench stack tags its Postgres connections with an `application_name` and runs a private
redis-server, so the Postgres backends serving Conveyor and the Redis server can be told apart from
whatever else runs on the machine (other test runs share the system Postgres).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import psycopg

_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads) so far; 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


def process_tree(pid: int) -> list[int]:
    """A process and its descendants (a server that forks its workers)."""
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            pending += [int(child) for child in task.read_text().split()]
    return found


def postgres_backends(pg_url: str, application_name: str) -> list[int]:
    """Pids of the Postgres backends whose clients set this application name."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE application_name = %s", (application_name,))
        return [row[0] for row in rows]


@dataclass
class CpuMeter:
    """CPU per named group of processes between `start()` and `stop()`.

    `groups` maps a name to a function returning that group's pids now: Postgres backends come and
    go with connection pools, so a backend first seen at `stop()` counts from zero (its whole life
    falls inside the window)."""

    groups: Mapping[str, Callable[[], list[int]]]

    def start(self) -> None:
        self._before = {name: {pid: cpu_seconds(pid) for pid in pids()} for name, pids in self.groups.items()}

    def stop(self) -> dict[str, float]:
        """CPU seconds per group spent since `start()`."""
        spent: dict[str, float] = {}
        for name, pids in self.groups.items():
            before = self._before[name]
            now = {pid: cpu_seconds(pid) for pid in set(pids()) | set(before)}
            spent[name] = sum(max(0.0, now[pid] - before.get(pid, 0.0)) for pid in now)
        return spent
