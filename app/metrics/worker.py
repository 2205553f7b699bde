"""A worker process's side of the cluster's counts: endings, cancellations, rate-limit waits, webhook attempts.

Everything is counted into the process's pending counts first (dictionary additions, ~10 µs a job).
They reach Redis with the pipeline that announces jobs' endings (workers/endings.py), at most once per
`send_seconds`: sent with every ending, the increments cost a worker ~50 µs of CPU and Redis ~35 µs
per job (measured); sent once a second, nothing per job under load. A flusher thread sends what a
quiet second left pending (waits, webhook attempts, the last endings), and the worker's last act sends
the rest; so the cluster's counters are at most about `send_seconds` behind, and a killed worker
loses at most that much counting.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

from app.metrics.counts import Counts, PendingCounts, add_to
from app.metrics.families import RATE_WAIT, WEBHOOKS
from app.metrics.jobs import cancelled_counts, count_ending
from app.metrics.models import ModelLabels
from app.store.job_records import Finish, JobRecord
from app.store.tables import utcnow

log = logging.getLogger("conveyor.metrics")

# A delivery attempt's stored status, as the outcome it was.
WEBHOOK_OUTCOMES = {"succeeded": "succeeded", "pending": "retrying", "failed": "failed", "gone": "gone"}
SEND_SECONDS = 1.0


class WorkerCounts:
    def __init__(self, model_label: ModelLabels, send_seconds: float = SEND_SECONDS) -> None:
        self.model_label = model_label
        self.pending = PendingCounts()
        self.send_seconds = send_seconds
        self._last_sent = 0.0  # monotonic; racy reads only make a send a little early or late
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def count_endings(self, endings: Sequence[tuple[JobRecord, Finish]]) -> None:
        """Written endings (their statuses, waits, attempts, tokens, cost) into the pending counts.
        Never raises: counting must not stand in the way of announcing."""
        try:
            now, counts = utcnow(), Counts()
            for job, finish in endings:
                count_ending(counts, job, finish, now, self.model_label)
            self.pending.add(counts)
        except Exception:
            log.exception("could not count jobs' endings in the metrics")

    def ride(self, pipe: Any) -> Counts | None:
        """Append the pending counts to `pipe` if none were sent for `send_seconds`; what was appended
        (to `put_back` should the pipeline fail), else None."""
        if time.monotonic() - self._last_sent < self.send_seconds:
            return None
        self._last_sent = time.monotonic()
        counts = self.pending.take()
        add_to(pipe, counts)
        return counts

    def put_back(self, counts: Counts) -> None:
        self.pending.put_back(counts)

    def cancelled(self, jobs: int) -> None:
        """Batch items the dispatcher cancelled (put back on the queue after their batch's cancel)."""
        self.pending.add(cancelled_counts(jobs))

    def rate_wait(self, model: str, seconds: float) -> None:
        """A limited model's permit came after `seconds` (the limiter's `on_wait`; on the event loop)."""
        self.pending.observe(RATE_WAIT, seconds, self.model_label(model))

    def webhook_attempt(self, status: str) -> None:
        """One delivery attempt ended with this stored status."""
        self.pending.inc(WEBHOOKS, WEBHOOK_OUTCOMES.get(status, status))

    def start_flusher(self, redis: Any) -> None:
        def run() -> None:
            while not self._stop.wait(self.send_seconds / 2):
                if time.monotonic() - self._last_sent >= self.send_seconds:
                    self._last_sent = time.monotonic()
                    self.pending.flush(redis)

        self._thread = threading.Thread(target=run, name="conveyor-metrics-flush", daemon=True)
        self._thread.start()

    def stop(self, redis: Any) -> None:
        self._stop.set()
        self.pending.flush(redis)
