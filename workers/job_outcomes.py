"""What running a job's engine call can come to: a result, a failure to record, or a deferral. The two
ways the worker must write nothing (its lease went to another worker, or the job was cancelled) are
the exceptions of workers/cancellation.py, raised by workers/runner.py."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from app.engine.results import AttemptRecord
from app.errors import ConveyorError, TaskFailed
from app.ratelimit import RateLimitWaitExceeded

log = logging.getLogger("conveyor.worker")


@dataclass(frozen=True)
class JobFailure:
    error: dict[str, Any]
    attempts: tuple[AttemptRecord, ...]


@dataclass(frozen=True)
class Deferred:
    """The rate limiter had no room in time: run the job again after `retry_after` seconds."""

    retry_after: float


def failure(error_type: str, message: str) -> JobFailure:
    return JobFailure({"type": error_type, "message": message, "detail": message, "status_code": 500}, ())


def outcome_of_error(job_id: str, exc: Exception) -> JobFailure | Deferred:
    """What the engine call's error comes to. (A cancellation is not an outcome: workers/runner.py
    raises why the job was stopped.)"""
    if isinstance(exc, TaskFailed):
        return JobFailure(error_body(exc), exc.records)
    if isinstance(exc, RateLimitWaitExceeded):  # raised before any provider request: nothing spent
        return Deferred(exc.retry_after)
    if isinstance(exc, ConveyorError):
        return JobFailure(error_body(exc), ())
    # A bug: keep the job honest and the worker alive.
    log.error("job crashed", exc_info=exc, extra={"job_id": job_id})
    return failure("InternalServerError", f"internal error: {type(exc).__name__}")


def error_body(exc: ConveyorError) -> dict[str, Any]:
    return {
        "type": exc.error_type,
        "message": exc.message,
        "detail": exc.detail,
        "status_code": exc.status_code,
    }
