"""The worker's periodic duties, on one background thread.

- Jobs whose worker died go back on the queue, well before the broker's visibility timeout would.
- Interactive jobs still queued after `stranded_after` (CONVEYOR_STRANDED_AFTER, 5 minutes) have their
  message sent again: an API that died between writing a job and enqueueing it, or a message lost in
  transit when a broker connection was cut, would otherwise leave it queued for ever.
- Webhook deliveries whose retry is due are dispatched (the schedule lives in the database, not in
  broker ETAs, which the Redis broker would hold in worker memory and redeliver after the
  visibility timeout), and deliveries whose sender died mid-send become due again.
- Batch windows are topped up, lost batch messages sent again and ended batches closed
  (workers/batch_dispatch.py), by one worker per round; a worker consuming the batch queue
  keeps its thread count registered, which sizes the windows.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

import redis

from app.queue import TaskQueue
from app.services.webhook_delivery import WebhookDispatcher
from app.store import keys, redis_locks
from app.store.job_recovery import JobRecovery
from app.store.tables import utcnow
from app.store.webhooks import WebhookDeliveryRepository
from workers.batch_dispatch import BatchCapacity, BatchDispatcher

log = logging.getLogger("conveyor.sweeper")

# Long enough that a merely busy queue rarely gets duplicates (harmless, but extra messages), short
# enough that a stranded call still finishes within a synchronous caller's wait (10 minutes).
STRANDED_AFTER = timedelta(minutes=5)


@dataclass
class BatchDuties:
    """The batch work among the periodic duties: rounds of the dispatcher, and this worker's share of the capacity.

    A round runs every `interval_seconds`, or once kicked (as this worker's items end, and as the API
    announces a new batch: workers/batch_starts.py) at most every `check_seconds`, so a fast batch's
    window refills without a round per item; or at once when kicked `at_once` (a new batch, a worker
    whose last item just ended: its batch may be over)."""

    dispatcher: BatchDispatcher
    capacity: BatchCapacity
    redis: redis.Redis
    member: str  # this worker, `host:pid`
    slots: int  # 0 when this worker does not consume the batch queue
    interval_seconds: float = 0.5
    check_seconds: float = 0.1
    capacity_interval_seconds: float = 5.0
    kicked: threading.Event = field(default_factory=threading.Event)
    kicked_at_once: threading.Event = field(default_factory=threading.Event)
    last_round: float = 0.0

    def kick(self, at_once: bool = False) -> None:
        if at_once:
            self.kicked_at_once.set()
        self.kicked.set()

    def next_round_at(self) -> float:
        """When the next round is due (monotonic clock): sooner once kicked."""
        if self.kicked_at_once.is_set():
            return 0.0
        return self.last_round + (self.check_seconds if self.kicked.is_set() else self.interval_seconds)

    def maybe_dispatch(self) -> int:
        if time.monotonic() < self.next_round_at():
            return 0
        self.kicked_at_once.clear()
        self.kicked.clear()
        self.last_round = time.monotonic()
        return self.dispatch_round()

    def dispatch_round(self) -> int:
        """A dispatcher round, unless another worker is running one."""
        lock_ms = int(max(self.interval_seconds * 4, 2.0) * 1000)
        if not self.redis.set(keys.BATCH_DISPATCH_LOCK, self.member, nx=True, px=lock_ms):
            return 0
        try:
            return self.dispatcher.tick()
        finally:
            redis_locks.release(self.redis, keys.BATCH_DISPATCH_LOCK, self.member)

    def register_capacity(self) -> None:
        if self.slots:
            self.capacity.register(self.member, self.slots)


class PeriodicDuties:
    def __init__(
        self,
        recovery: JobRecovery,
        queue: TaskQueue,
        interval_seconds: float,
        *,
        deliveries: WebhookDeliveryRepository | None = None,
        dispatcher: WebhookDispatcher | None = None,
        webhook_interval_seconds: float = 1.0,
        batches: BatchDuties | None = None,
        stranded_after: timedelta = STRANDED_AFTER,
    ) -> None:
        self.recovery = recovery
        self.stranded_after = stranded_after
        self.queue = queue
        self.interval = interval_seconds
        self.deliveries = deliveries
        self.dispatcher = dispatcher
        self.webhook_interval = webhook_interval_seconds
        self.batches = batches
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="conveyor-sweeper", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self.batches is not None:
            self.batches.kick(at_once=True)  # wakes the loop if it waits for a kick

    def sweep_once(self) -> list[str]:
        requeued = self.recovery.requeue_expired_jobs()
        self.queue.enqueue_jobs([job.id for job in requeued if job.batch_id is None])
        self.queue.enqueue_batch_items([job.id for job in requeued if job.batch_id is not None])
        if requeued:
            log.warning("requeued jobs whose lease expired", extra={"count": len(requeued)})
        return [job.id for job in requeued]

    def resend_stranded_once(self) -> int:
        stranded = self.recovery.resend_stranded(queued_before=utcnow() - self.stranded_after)
        self.queue.enqueue_jobs(stranded)
        if stranded:
            log.warning("sent again the messages of jobs queued too long", extra={"count": len(stranded)})
        return len(stranded)

    def dispatch_webhooks_once(self) -> int:
        if self.deliveries is None or self.dispatcher is None:
            return 0
        stuck = self.deliveries.requeue_stuck()
        if stuck:
            log.warning("webhook deliveries whose sender died are due again", extra={"count": stuck})
        return self.dispatcher.dispatch_due()

    def _loop(self) -> None:
        duties = [
            (self.interval, self.sweep_once),
            (self.interval * 6, self.resend_stranded_once),
            (self.webhook_interval, self.dispatch_webhooks_once),
        ]
        if self.batches is not None:
            self.batches.register_capacity()
            duties.append((self.batches.capacity_interval_seconds, self.batches.register_capacity))
        due = [time.monotonic() + every for every, _ in duties]
        while not self._stop.is_set():
            self._sleep_until(min(due))
            if self._stop.is_set():
                return
            now = time.monotonic()
            for index, (every, duty) in enumerate(duties):
                if now >= due[index]:
                    due[index] = now + every
                    self._run(duty)
            if self.batches is not None and now >= self.batches.next_round_at():
                self._run(self.batches.maybe_dispatch)

    def _sleep_until(self, deadline: float) -> None:
        """Until `deadline` or stop; with batch duties, also until their next round, which kicks bring
        forward: unkicked, the wait ends at a kick; kicked, it sleeps out the rest of `check_seconds`
        unless kicked at once."""
        wake = self._stop
        if self.batches is not None:
            deadline = min(deadline, self.batches.next_round_at())
            kicked = self.batches.kicked.is_set()
            wake = self.batches.kicked_at_once if kicked else self.batches.kicked
        wake.wait(max(0.0, deadline - time.monotonic()))

    @staticmethod
    def _run(duty: Callable[[], object]) -> None:
        try:
            duty()
        except Exception:  # the database may be briefly away; try again next time
            log.exception("periodic %s failed", duty.__name__)
