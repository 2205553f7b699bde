"""Renews the leases of every job a worker process runs, all of them in one statement a third of a lease.

Each job used to renew its own lease: it waited for its engine call in slices of a third of the lease
and wrote a renewal between slices. With thousands of long calls in flight that is thousands of
transactions per lease period, plus a waiter, a timer and a round of wake-ups per job per slice. Here
a job registers its lease while its engine call runs, and one task on the worker's loop renews all
registered leases together (`JobRepository.renew_many`). A job whose lease is no longer held (another
worker took it over after an expiry, or the API cancelled it) is stopped through its `Watch` with
LeaseLost. When the database cannot be reached, each job keeps its call going while its lease lasts
(workers/outage.py) and is stopped with the database's error once it has run out, as before.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from app.store.db import DATABASE_UNAVAILABLE
from workers.cancellation import LeaseLost, Watch
from workers.claims import RunBlocking
from workers.outage import LeaseClock

log = logging.getLogger("conveyor.worker")

RenewMany = Callable[[Sequence[tuple[str, str]], int], set[tuple[str, str]]]  # blocking: the pairs renewed


@dataclass(slots=True)
class HeldLease:
    clock: LeaseClock
    watch: Watch


class LeaseKeeper:
    """Loop-only: `keep` is called on the worker's event loop, which the renewing task runs on."""

    def __init__(self, renew_many: RenewMany, run_blocking: RunBlocking, lease_seconds: int) -> None:
        self.renew_many = renew_many
        self.run_blocking = run_blocking
        self.lease_seconds = lease_seconds
        self.every = max(lease_seconds / 3, 0.2)
        self._held: dict[tuple[str, str], HeldLease] = {}
        # Armed while leases are held: a timer, not a sleeping task, so an idle worker has nothing pending.
        self._next: asyncio.TimerHandle | None = None

    def keep(self, job_id: str, token: str, clock: LeaseClock, watch: Watch) -> tuple[str, str]:
        """Renew the lease (`job_id`, `token`) until `release`; `watch` is stopped if it is lost."""
        key = (job_id, token)
        self._held[key] = HeldLease(clock, watch)
        if self._next is None:
            self._next = asyncio.get_running_loop().call_later(self.every, self._tick)
        return key

    def release(self, key: tuple[str, str]) -> None:
        self._held.pop(key, None)

    def _tick(self) -> None:
        if not self._held:
            self._next = None  # armed again by the next `keep`
            return
        asyncio.get_running_loop().create_task(self._renew_then_rearm())

    async def _renew_then_rearm(self) -> None:
        try:
            await self.renew_now()
        except Exception:  # a bug must not end renewals for every job in flight
            log.exception("renewing leases failed")
        finally:
            self._next = asyncio.get_running_loop().call_later(self.every, self._tick)

    async def renew_now(self) -> None:
        """Renew every held lease once, and stop the jobs whose lease is gone."""
        held = list(self._held.items())
        asked_at = time.monotonic()
        try:
            renewed = await self.run_blocking(self.renew_many, [key for key, _ in held], self.lease_seconds)
        except DATABASE_UNAVAILABLE as error:
            self._outage(held, error)
            return
        for key, lease in held:
            if key in renewed:
                lease.clock.renewed(asked_at, self.lease_seconds)
            else:
                lease.watch.stop(LeaseLost())

    def _outage(self, held: list[tuple[tuple[str, str], HeldLease]], error: BaseException) -> None:
        """Jobs keep their calls while their leases last; those whose leases ran out get the error."""
        expired = [lease for _, lease in held if lease.clock.remaining() <= 0]
        log.warning(
            "database unreachable; leases were not renewed",
            extra={"jobs": len(held), "stopped": len(expired), "error": repr(error)[:200]},
        )
        for lease in expired:
            lease.watch.stop(error)
