"""What a job's ending adds to the cluster's counts: its status, its waits, and each model attempt's
outcome, tokens and cost (read from the attempt spans the ending writes, so nothing is counted that
was not recorded, and a redelivered job that is not written counts nothing)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from app.metrics.counts import Counts
from app.metrics.families import (
    CALL_DURATION,
    COST,
    JOBS_FINISHED,
    JOBS_SUBMITTED,
    MODEL_ATTEMPTS,
    QUEUE_WAIT,
    TOKENS,
)
from app.queue import BATCH_QUEUE, INTERACTIVE_QUEUE
from app.store.job_records import Finish, JobRecord

GENERATION = "generation"  # the span type of one model attempt (app/store/spans.py)


def count_ending(
    counts: Counts, job: JobRecord, finish: Finish, now: datetime, model_label: Callable[[str], str]
) -> None:
    """Add one written ending; `job` as claimed (its `started_at` is the claim's time)."""
    counts.inc(JOBS_FINISHED, finish.status.value)
    queue = BATCH_QUEUE if job.batch_id else INTERACTIVE_QUEUE
    if job.started_at is not None:
        counts.observe(QUEUE_WAIT, max(0.0, (job.started_at - job.created_at).total_seconds()), queue)
        counts.observe(CALL_DURATION, max(0.0, (now - job.started_at).total_seconds()), queue)
    for span in finish.spans:
        if span.type != GENERATION:
            continue
        model = model_label(span.model or "")
        counts.inc(MODEL_ATTEMPTS, model, "error" if span.error else "success")
        if span.input_tokens:
            counts.inc(TOKENS, model, "input", by=span.input_tokens)
        if span.output_tokens:
            counts.inc(TOKENS, model, "output", by=span.output_tokens)
        cost = (span.cost_generation or 0.0) + (span.cost_platform or 0.0)
        if cost:
            counts.inc(COST, model, by=cost)


def cancelled_counts(jobs: int) -> Counts:
    """Jobs cancelled: by the API (one job, or a batch's items not yet ended), or by the batch dispatcher
    (a cancelling batch's items that went back to the queue after its cancel: a lost worker's, a deferral)."""
    counts = Counts()
    if jobs:
        counts.inc(JOBS_FINISHED, "cancelled", by=jobs)
    return counts


def submitted_counts(queue: str, jobs: int) -> Counts:
    counts = Counts()
    if jobs:
        counts.inc(JOBS_SUBMITTED, queue, by=jobs)
    return counts
