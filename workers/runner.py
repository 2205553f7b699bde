"""Runs one job as a coroutine on the worker's loop: claim, execute while renewing the lease, finish once.

The job's lease is renewed, with every other lease the process holds, by its lease keeper
(workers/lease_keeper.py) while the engine call runs; the database writes run on the runtime's few
blocking threads, so a job in flight costs a coroutine, not a thread. A worker that dies stops
renewing, and the periodic duties (workers/periodic.py) hand the job to another worker; a worker
that finds its lease gone, or its job cancelled, abandons its work instead of writing: the job's
`Watch` cancels the engine call and says why.

The final state, the spans and the webhook delivery are written in one transaction, only by the
holder of the current lease: however often a job is redelivered, it has one result, is billed once,
and its webhook carries that one result. Announcements (job done, stream end, webhook dispatch) go
out after the commit; each has a backstop if it is lost (waiters re-check, the periodic duties dispatch).

Batch items run the same way, with their batch's template merged into their task, at the rate
limiter's low priority and with a bounded wait for it: when the limiter has no room in time, the job
goes back to the queue (no attempt counted, nothing billed) with a delayed message. After an item
ends, the batch's next item is sent and the batch is ended if it was the last.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from app.engine.results import CallResult
from app.observability import tracing
from app.queue import TaskQueue
from app.services.call_spans import spans_for_failure, spans_for_success
from app.services.fewshot import EmptyDatasetMemo
from app.services.webhook_delivery import DISPATCH_GRACE
from app.services.webhooks import new_delivery
from app.store.job_records import Claim, Finish
from app.store.tables import JobStatus, utcnow
from workers.batch_support import BatchSupport, with_template
from workers.cancellation import HardTimeLimit, JobCancelled, LeaseLost, Watch
from workers.claims import ClaimBatcher
from workers.deferral import defer
from workers.endings import Ending, EndingWriter
from workers.engine_call import engine_call
from workers.grouped import Grouped
from workers.job_outcomes import Deferred, JobFailure, failure, outcome_of_error
from workers.lease_keeper import LeaseKeeper
from workers.outage import LeaseClock, while_leased
from workers.runtime import WorkerRuntime

log = logging.getLogger("conveyor.worker")
T = TypeVar("T")
HARD_TIME_LIMIT = HardTimeLimit()  # a stop reason only, never raised: one for every job


class JobRunner:
    """The steps of a job, in order: claim (workers/claims.py, with a batch item's template), the engine
    call (workers/engine_call.py) under the lease and the hard time limit, its outcome
    (workers/job_outcomes.py), then either a deferral (workers/deferral.py) or the ending
    (workers/endings.py)."""

    def __init__(
        self, runtime: WorkerRuntime, *, queue: TaskQueue | None = None, batches: BatchSupport | None = None
    ) -> None:
        self.runtime = runtime
        self.settings = runtime.settings
        self.queue = queue
        self.batches = batches
        self.empty_datasets = EmptyDatasetMemo()  # touched only on the runtime's event loop
        self.claims = ClaimBatcher(self._claim_many, self._claim_one, self._blocking)
        self.leases = LeaseKeeper(runtime.jobs.renew_many, self._blocking, runtime.settings.job_lease_seconds)
        self.ending_writer = EndingWriter(runtime, self._blocking)
        self.endings: Grouped[Ending, bool] = Grouped(self.ending_writer.write)

    def run(self, job_id: str) -> JobStatus | None:
        """Run a job from a thread outside the loop (tests, other pools): waits for `run_async`."""
        return self.runtime.loop.run(self.run_async(job_id))

    async def run_async(self, job_id: str) -> JobStatus | None:
        """Runs on the runtime's loop; database writes and blocking Redis calls go to its threads."""
        # Watching starts before the claim: a cancellation committed before the claim makes it fail,
        # and one committed after it is published after it, so no cancellation slips between the two.
        with self.runtime.cancels.watch(job_id) as watch:
            claim = await self.claims.claim(job_id)
            if claim is None:
                log.info("job not claimable (finished, cancelled or held by a live worker)", extra={"job_id": job_id})
                return None
            tracing.job_claimed(claim.job)  # the run's span, in the job's trace (no-op unless tracing)
            started = utcnow()
            lease = LeaseClock.of(claim)
            try:
                outcome = await self._execute(claim, watch, lease)
            except LeaseLost:
                log.warning("lease lost; abandoning job", extra={"job_id": job_id})
                return None
            except JobCancelled:
                log.info("job cancelled; its provider call was abandoned", extra={"job_id": job_id})
                return None
        if isinstance(outcome, Deferred):
            tracing.job_deferred()
            await self._blocking(defer, self.runtime, self.queue, claim, outcome.retry_after)
            return None
        status = await self._finish(claim, outcome, started, lease)
        if claim.job.batch_id and self.batches is not None:
            self.batches.item_ended(self.runtime.cancels.in_flight == 0)
        return status

    async def _blocking(self, function: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.runtime.blocking, function, *args)

    def _claim_many(self, job_ids: list[str]) -> dict[str, Claim]:
        claims = self.runtime.jobs.claim_queued(job_ids, self.settings.job_lease_seconds)
        return {job_id: with_template(claim, self.batches) for job_id, claim in claims.items()}

    def _claim_one(self, job_id: str) -> Claim | None:
        claim = self.runtime.jobs.claim(job_id, self.settings.job_lease_seconds)
        return with_template(claim, self.batches) if claim is not None else None

    async def _execute(self, claim: Claim, watch: Watch, lease: LeaseClock) -> CallResult | JobFailure | Deferred:
        """The engine call, run in this task while the lease keeper renews its lease. Stopped through
        `watch` (cancelled, lease lost, lease run out in a database outage, hard time limit), it raises
        why, or fails the job at the limit. No second task and no waiter per job: a job in flight is one
        task, one timer and its entry in the keeper."""
        task = asyncio.current_task()
        assert task is not None
        limit = self.settings.job_hard_time_limit
        held = self.leases.keep(claim.job.id, claim.token, lease, watch)
        watch.attach(task)
        deadline = asyncio.get_running_loop().call_later(limit, watch.stop, HARD_TIME_LIMIT)
        try:
            return await engine_call(self.runtime, claim, self.empty_datasets)
        except asyncio.CancelledError:
            if watch.stopped_by is None and not task.cancelling():
                # Not this task's cancellation: something inside the call awaited a cancelled future.
                # Write nothing, as for a lost lease: the lease sweep runs the job again.
                log.error("the engine call was cancelled from within", extra={"job_id": claim.job.id})
                raise LeaseLost() from None
            if watch.stopped_by is None or task.uncancel() > 0:
                raise  # the worker is stopping
            if isinstance(watch.stopped_by, HardTimeLimit):
                return failure("JobTimeout", f"the job exceeded its hard time limit of {limit} s")
            raise watch.stopped_by from None
        except Exception as exc:
            return outcome_of_error(claim.job.id, exc)
        finally:
            deadline.cancel()
            watch.detach()
            self.leases.release(held)

    async def _finish(
        self, claim: Claim, outcome: CallResult | JobFailure, started: datetime, lease: LeaseClock
    ) -> JobStatus | None:
        job = claim.job
        if isinstance(outcome, CallResult):
            status, result, error = JobStatus.succeeded, outcome.as_opper(job.span_id), None
            spans = spans_for_success(job, outcome)
        else:
            status, result, error = JobStatus.failed, None, outcome.error
            spans = spans_for_failure(job, outcome.error["message"], outcome.attempts, started)
        delivery = new_delivery(
            job,
            status,
            result=result,
            error=error,
            max_inline_bytes=self.settings.webhook_max_inline_bytes,
            grace=DISPATCH_GRACE,
        )
        extra = [delivery] if delivery is not None else []
        ending = Ending(claim, Finish(job.id, claim.token, status, result, error, spans, extra))
        if not await while_leased(lambda: self.endings.submit(ending), lease, job.id):
            log.warning("job already finished elsewhere; result discarded", extra={"job_id": job.id})
            return None
        log.info("job finished", extra={"job_id": job.id, "status": status.value})
        return status
