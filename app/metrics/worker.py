"""A worker process's side of the cluster's counts: endings, rate-limit waits, webhook attempts.

Endings ride the pipeline that announces them (workers/endings.py), carrying whatever else is pending;
rate-limit waits are pending until then; a webhook attempt, which has no round trip of ours to ride
(its writes are SQL), sends its count in one of its own. A flusher thread sends anything left pending
after `flush_seconds` (a worker with waits but no endings), and the worker's last act sends the rest.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from app.metrics.counts import Counts, PendingCounts, add_to
from app.metrics.families import RATE_WAIT, WEBHOOKS
from app.metrics.jobs import count_ending
from app.metrics.models import ModelLabels
from app.store.job_records import Finish, JobRecord
from app.store.tables import utcnow

# A delivery attempt's stored status, as the outcome it was.
WEBHOOK_OUTCOMES = {"succeeded": "succeeded", "pending": "retrying", "failed": "failed", "gone": "gone"}


class WorkerCounts:
    def __init__(self, model_label: ModelLabels, flush_seconds: float = 5.0) -> None:
        self.model_label = model_label
        self.pending = PendingCounts()
        self.flush_seconds = flush_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add_endings(self, pipe: Any, endings: Sequence[tuple[JobRecord, Finish]]) -> Counts:
        """Append the endings' counts, and everything pending, to `pipe`; what was added (to put back
        with `put_back` should the pipeline fail)."""
        now = utcnow()
        counts = self.pending.take()
        for job, finish in endings:
            count_ending(counts, job, finish, now, self.model_label)
        add_to(pipe, counts)
        return counts

    def add_later(self, endings: Sequence[tuple[JobRecord, Finish]]) -> None:
        """Endings written with no announcement to ride (provider-batch items): sent by the flusher."""
        now, counts = utcnow(), Counts()
        for job, finish in endings:
            count_ending(counts, job, finish, now, self.model_label)
        self.pending.add(counts)

    def put_back(self, counts: Counts) -> None:
        self.pending.put_back(counts)

    def rate_wait(self, model: str, seconds: float) -> None:
        """A limited model's permit came after `seconds` (the limiter's `on_wait`; on the event loop)."""
        self.pending.observe(RATE_WAIT, seconds, self.model_label(model))

    def webhook_attempt(self, redis: Any, status: str) -> None:
        """One delivery attempt ended with this stored status; sent at once (a thread's blocking client)."""
        self.pending.inc(WEBHOOKS, WEBHOOK_OUTCOMES.get(status, status))
        self.pending.flush(redis)

    def start_flusher(self, redis: Any) -> None:
        def run() -> None:
            while not self._stop.wait(self.flush_seconds):
                self.pending.flush(redis)

        self._thread = threading.Thread(target=run, name="conveyor-metrics-flush", daemon=True)
        self._thread.start()

    def stop(self, redis: Any) -> None:
        self._stop.set()
        self.pending.flush(redis)
