"""Deferring a job the rate limiter had no room for: hand it back (no attempt counted, nothing billed)
and send its message again once the limiter may have room."""

from __future__ import annotations

import logging
from datetime import timedelta

from app.queue import TaskQueue
from app.store.job_records import Claim
from app.store.tables import utcnow
from workers.runtime import WorkerRuntime

log = logging.getLogger("conveyor.worker")

MAX_DEFER_SECONDS = 30.0


def defer(runtime: WorkerRuntime, queue: TaskQueue | None, claim: Claim, retry_after: float) -> None:
    """Runs on a blocking thread. A batch item also records when it is due, so the dispatcher counts it
    out and sends it again if its delayed message is lost."""
    job = claim.job
    countdown = min(max(retry_after, 1.0), MAX_DEFER_SECONDS)
    due = utcnow() + timedelta(seconds=countdown) if job.batch_id else None
    if runtime.jobs.release(job.id, claim.token, redispatch_at=due) is None:
        return
    log.info("no rate-limit room; job goes back to the queue", extra={"job_id": job.id, "countdown": countdown})
    try:
        if queue is None:
            raise RuntimeError("this runner has no queue to re-enqueue with")
        queue.defer(job.id, batch_item=job.batch_id is not None, countdown=countdown)
    except Exception:  # a batch item is sent again by the dispatcher once its message counts as lost
        log.error("could not re-enqueue a deferred job", extra={"job_id": job.id}, exc_info=True)
