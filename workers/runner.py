"""Runs one job on a worker thread: claim, execute on the shared loop while renewing the lease, finish once.

The thread blocks on the engine coroutine in slices of a third of the lease, renewing the lease
between slices. A worker that dies stops renewing, and the sweeper hands the job to another worker;
a worker that finds its lease gone abandons its work instead of writing a second result.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import CancelledError
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any

from app.engine.executor import complete_task
from app.engine.results import AttemptRecord, CallResult
from app.engine.task import task_from_dict
from app.errors import ConveyorError, TaskFailed
from app.store import keys
from app.store.jobs import Claim
from app.store.spans import spans_for_failure, spans_for_success
from app.store.tables import JobStatus, utcnow
from workers.runtime import WorkerRuntime

log = logging.getLogger("conveyor.worker")


@dataclass(frozen=True)
class JobFailure:
    error: dict[str, Any]
    attempts: tuple[AttemptRecord, ...]


class LeaseLost(Exception):
    """Another worker now owns the job; this one must not write anything."""


class JobRunner:
    def __init__(self, runtime: WorkerRuntime) -> None:
        self.runtime = runtime
        self.settings = runtime.settings

    def run(self, job_id: str) -> JobStatus | None:
        claim = self.runtime.jobs.claim(job_id, self.settings.job_lease_seconds)
        if claim is None:
            log.info("job not claimable (finished, cancelled or held by a live worker)", extra={"job_id": job_id})
            return None
        started = utcnow()
        try:
            outcome = self._execute(claim)
        except LeaseLost:
            log.warning("lease lost; abandoning job", extra={"job_id": job_id})
            return None
        return self._finish(claim, outcome, started)

    def _execute(self, claim: Claim) -> CallResult | JobFailure:
        task = task_from_dict(claim.job.task)
        future = self.runtime.loop.submit(
            complete_task(task, self.runtime.engine_deps, cache_scope=claim.job.project_id)
        )
        deadline = time.monotonic() + self.settings.job_hard_time_limit
        slice_seconds = max(self.settings.job_lease_seconds / 3, 0.2)
        while True:
            remaining = deadline - time.monotonic()
            try:
                return future.result(timeout=max(min(slice_seconds, remaining), 0.01))
            except FutureTimeout:
                if time.monotonic() >= deadline:
                    future.cancel()
                    return self._failure(
                        "JobTimeout",
                        f"the job exceeded its hard time limit of {self.settings.job_hard_time_limit} s",
                    )
                if not self.runtime.jobs.renew(claim.job.id, claim.token, self.settings.job_lease_seconds):
                    future.cancel()
                    raise LeaseLost() from None
            except TaskFailed as exc:
                return JobFailure(_error_body(exc), exc.records)
            except CancelledError:
                raise LeaseLost() from None
            except ConveyorError as exc:
                return JobFailure(_error_body(exc), ())
            except Exception as exc:  # a bug: keep the job honest and the worker alive
                log.exception("job crashed", extra={"job_id": claim.job.id})
                return self._failure("InternalServerError", f"internal error: {type(exc).__name__}")

    @staticmethod
    def _failure(error_type: str, message: str) -> JobFailure:
        return JobFailure({"type": error_type, "message": message, "detail": message, "status_code": 500}, ())

    def _finish(self, claim: Claim, outcome: CallResult | JobFailure, started) -> JobStatus | None:  # noqa: ANN001
        job = claim.job
        if isinstance(outcome, CallResult):
            status = JobStatus.succeeded
            written = self.runtime.jobs.finish(
                job.id,
                claim.token,
                status,
                result=outcome.as_opper(job.span_id),
                spans=spans_for_success(job, outcome),
            )
        else:
            status = JobStatus.failed
            written = self.runtime.jobs.finish(
                job.id,
                claim.token,
                status,
                error=outcome.error,
                spans=spans_for_failure(job, outcome.error["message"], outcome.attempts, started),
            )
        if not written:
            log.warning("job already finished elsewhere; result discarded", extra={"job_id": job.id})
            return None
        # Persisted first, announced second: a waiter that hears this reads the stored result.
        self.runtime.redis.publish(keys.job_done_channel(job.id), status.value)
        log.info("job finished", extra={"job_id": job.id, "status": status.value})
        return status


def _error_body(exc: ConveyorError) -> dict[str, Any]:
    return {
        "type": exc.error_type,
        "message": exc.message,
        "detail": exc.detail,
        "status_code": exc.status_code,
    }
