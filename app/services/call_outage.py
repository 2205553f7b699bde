"""The answer of a waiting `/v2/call` whose database went away after its job was accepted: a 503 that
names the job, so the caller polls it instead of sending the call again."""

from __future__ import annotations

import logging

from starlette.concurrency import run_in_threadpool

from app.errors import AcceptedJobUnavailable
from app.store.db import DATABASE_UNAVAILABLE
from app.store.jobs import JobRecord, JobRepository

log = logging.getLogger("conveyor.jobs")


async def unavailable_while_waiting(jobs: JobRepository, job: JobRecord, *, durable: bool) -> AcceptedJobUnavailable:
    """The 503 of a waiting call whose job was accepted: it names the job, which the worker runs to its
    end (a result computed while the database is away is held and written once it is back, see
    workers/outage.py), so the caller polls it instead of sending the call again.

    `detail.stored` says whether the row is known to be on disk. A waiting call's row is written with
    a commit that does not wait for the disk (JobRepository.create); one attempt is made to flush it.
    Not known stored: a database that crashed (a clean restart or failover loses nothing) within a
    fraction of a second of accepting the call may have lost the job, key and all; polling it then
    answers 404 once the database is back, nothing of it was stored or billed, and the call may be
    sent again."""
    stored = durable
    if not stored:
        try:
            await run_in_threadpool(jobs.make_durable, job.id)
            stored = True
        except DATABASE_UNAVAILABLE:
            pass
    log.warning("database unavailable while a call waited", extra={"job_id": job.id, "stored": stored})
    poll = f"poll GET /v2/jobs/{job.id} for its result instead of sending the call again"
    if not stored:
        poll += " (a 404 once the database is back means it was lost with the database: send it again)"
    return AcceptedJobUnavailable(
        f"the database became unavailable while the call was waiting; its job was accepted and keeps running: {poll}",
        job_id=job.id,
        detail={"job_id": job.id, "span_id": job.span_id, "stored": stored},
    )
