"""Feeding batch items to the `conveyor.batch` queue a window at a time, never all at once.

Submitting a batch sends no message. Each worker's periodic duties thread runs `BatchDispatcher.tick` (one
worker per round, by a Redis lock): for every live batch it
- tops the batch up to its share of the window: items out (sent and unclaimed, or running) stay at
  most `window_per_slot` × the job slots of live batch workers, shared evenly among live batches;
- sends again the items sent longer than `lost_after` ago and still queued: their message was lost
  (Redis restarted or was flushed). A duplicate message is harmless: the claim takes a job once;
- re-cancels a cancelling batch's queued items (put back by a lost worker or the rate limit), and
  ends batches whose items all ended (see BatchCompletion).
Rounds come every half second, and sooner (at most every 0.1 s) after a worker ended an item, so the
window refills quickly even for fast models while messages still go out many per round: one message
per publish costs several times the broker round trips of a batch of them (workers/periodic.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import redis

from app.config import Settings
from app.queue import TaskQueue
from app.services.batch_completion import BatchCompletion
from app.services.batch_items import BATCH_CANCELLED_ERROR
from app.store import keys
from app.store.batch_dispatch import BatchDispatchRepository
from app.store.batches import BatchRepository
from app.store.tables import utcnow
from app.store.tables_batches import BatchStatus

log = logging.getLogger("conveyor.batches")

# Batch items yield to interactive calls at the rate limiter, and give their thread back when the
# limiter has no room within this long (the job returns to the queue; no attempt is counted).
BATCH_PRIORITY = 0
BATCH_MAX_RATE_WAIT = 60.0


@dataclass(frozen=True)
class DispatchPolicy:
    window_per_slot: float = 2.0
    lost_after: timedelta = timedelta(minutes=2)
    abandoned_intake_after: timedelta = timedelta(minutes=5)

    @classmethod
    def from_settings(cls, settings: Settings) -> DispatchPolicy:
        # A message unclaimed for two lease periods is lost: a live worker claims well within one.
        return cls(lost_after=timedelta(seconds=2 * settings.job_lease_seconds))


class BatchCapacity:
    """How many job slots consume the batch queue: each such worker registers its own in a Redis hash
    with an expiry time, refreshed by its periodic duties; members not refreshed in time no longer count."""

    def __init__(self, client: redis.Redis, *, ttl_seconds: float = 30.0) -> None:
        self.client = client
        self.ttl = ttl_seconds

    def register(self, member: str, slots: int) -> None:
        self.client.hset(keys.BATCH_CAPACITY, member, f"{slots}:{time.time() + self.ttl:.0f}")

    def unregister(self, member: str) -> None:
        self.client.hdel(keys.BATCH_CAPACITY, member)

    def slots(self) -> int:
        now, total, expired = time.time(), 0, []
        for member, value in self.client.hgetall(keys.BATCH_CAPACITY).items():
            slots, _, until = value.decode().partition(":")
            if float(until or 0) < now:
                expired.append(member)
            else:
                total += int(slots)
        if expired:
            self.client.hdel(keys.BATCH_CAPACITY, *expired)
        return total


class BatchDispatcher:
    def __init__(
        self,
        items: BatchDispatchRepository,
        batches: BatchRepository,
        completion: BatchCompletion,
        queue: TaskQueue,
        capacity: BatchCapacity,
        policy: DispatchPolicy,
        on_cancelled: Callable[[int], None] | None = None,
    ) -> None:
        """`on_cancelled`: told how many items a round cancelled (the worker's metrics counts)."""
        self.items = items
        self.batches = batches
        self.completion = completion
        self.queue = queue
        self.capacity = capacity
        self.policy = policy
        self.on_cancelled = on_cancelled

    def tick(self) -> int:
        """One round over the live batches; how many items were sent."""
        abandoned = self.batches.fail_abandoned_intakes(idle_since=utcnow() - self.policy.abandoned_intake_after)
        if abandoned:
            log.warning("batches whose intake died half-way failed", extra={"count": abandoned})
        live = self.items.live()
        # Provider-execution batches are fed to the providers' batch APIs (app/services/provider_batches.py).
        running = [b for b in live if b.status is BatchStatus.running and b.execution != "provider"]
        window = int(self.policy.window_per_slot * self.capacity.slots())
        share = max(1, window // len(running)) if running and window > 0 else 0
        sent = 0
        for batch in live:
            if batch.status is BatchStatus.cancelling:
                cancelled = self.batches.request_cancel(batch.id, error=BATCH_CANCELLED_ERROR)
                if cancelled and self.on_cancelled is not None:
                    self.on_cancelled(cancelled)
            elif share and batch.execution != "provider":
                sent += self._feed(batch.id, share)
            self.completion.end_if_done(batch.id)
        return sent

    def _feed(self, batch_id: str, share: int) -> int:
        lost = self.items.take_lost(batch_id, sent_before=utcnow() - self.policy.lost_after)
        if lost:
            log.warning("sending batch items again: their messages were lost", extra={"count": len(lost)})
        fresh = self.items.take_next(batch_id, share - self.items.outstanding(batch_id))
        return self._send([*lost, *fresh])

    def _send(self, job_ids: list[str]) -> int:
        try:
            self.queue.enqueue_batch_items(job_ids)
        except Exception:
            self.items.unsend(job_ids)
            raise
        return len(job_ids)
