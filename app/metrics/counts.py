"""Counting into the cluster's metrics hash without a round trip of its own.

A process adds what it counted to a `Counts` and, when it next sends Redis a pipeline anyway (a job's
ending announcement, a cancellation's), appends one `increments` command: a short Lua script that adds
every field's delta, however many jobs and fields a round trip carries. `PendingCounts` is a worker's
buffer for what it counts between round trips (rate-limit waits, webhook attempts), drained into the
next one, or by its flusher when none comes.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from typing import Any

from app.metrics.families import Family, counter_field, histogram_fields
from app.store import keys

log = logging.getLogger("conveyor.metrics")

# HINCRBYFLOAT for every field: counts stay exact integers (Redis prints 3.0 as "3"), sums add up.
INCREMENTS = """
for i = 1, #ARGV, 2 do redis.call('HINCRBYFLOAT', KEYS[1], ARGV[i], ARGV[i + 1]) end
return 0
"""


class Counts:
    """Deltas for the metrics hash, field by field."""

    __slots__ = ("deltas",)

    def __init__(self) -> None:
        self.deltas: dict[str, float] = {}

    def __bool__(self) -> bool:
        return bool(self.deltas)

    def inc(self, family: Family, *labels: str, by: float = 1) -> None:
        field = counter_field(family, *labels)
        self.deltas[field] = self.deltas.get(field, 0) + by

    def observe(self, family: Family, value: float, *labels: str) -> None:
        bucket, total = histogram_fields(family, value, *labels)
        self.deltas[bucket] = self.deltas.get(bucket, 0) + 1
        self.deltas[total] = self.deltas.get(total, 0) + value

    def merge(self, other: Counts) -> None:
        for field, delta in other.deltas.items():
            self.deltas[field] = self.deltas.get(field, 0) + delta

    def args(self) -> list[Any]:
        """`field, delta, ...` for the script: integers as integers (no `1.0` to parse)."""
        flat: list[Any] = []
        for field, delta in self.deltas.items():
            flat += (field, int(delta) if float(delta).is_integer() else repr(float(delta)))
        return flat


def add_to(pipe: Any, counts: Counts) -> None:
    """Append the increments to a pipeline (sync or asyncio) about to be sent; nothing if empty."""
    if counts:
        pipe.eval(INCREMENTS, 1, keys.METRICS_COUNTS, *counts.args())


class PendingCounts:
    """A process's counts not yet sent; filled and drained from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = Counts()

    def add(self, counts: Counts) -> None:
        with self._lock:
            self._counts.merge(counts)

    def inc(self, family: Family, *labels: str, by: float = 1) -> None:
        with self._lock:
            self._counts.inc(family, *labels, by=by)

    def observe(self, family: Family, value: float, *labels: str) -> None:
        with self._lock:
            self._counts.observe(family, value, *labels)

    def take(self, extra: Iterable[Counts] = ()) -> Counts:
        """Everything pending (plus `extra`), leaving nothing: the caller sends it or `put_back`s it."""
        with self._lock:
            taken, self._counts = self._counts, Counts()
        for counts in extra:
            taken.merge(counts)
        return taken

    def put_back(self, counts: Counts) -> None:
        """Counts whose round trip failed: they go with the next one."""
        self.add(counts)

    def flush(self, redis: Any) -> None:
        """Send what is pending in a round trip of its own (the flusher, a worker's last act)."""
        counts = self.take()
        if not counts:
            return
        try:
            redis.eval(INCREMENTS, 1, keys.METRICS_COUNTS, *counts.args())
        except Exception:
            self.put_back(counts)
            log.warning("could not send metrics counts; they go with the next round trip", exc_info=True)
