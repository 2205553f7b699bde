"""A job in hand when the database goes away: keep it while its lease lasts, instead of throwing it away.

A worker cannot renew a lease or write a result while the database is unreachable, but nobody else can
take the job over either: claims and the sweeper's hand-backs are database writes too. So a worker
keeps its provider call going through failed renewals, and holds a finished result, trying the final
write again with backoff, until the lease it last renewed runs out. A short outage then costs a delay,
not a second provider call. Past the lease, the sweeper may hand the job to another worker once the
database is back; the error then goes up as before (workers/loop_pool.py puts the message back on the
queue) and the job is run again. Whoever writes, the write is conditional on the lease token
(JobRepository.finish), so a held result never lands beside another.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from app.store.db import DATABASE_UNAVAILABLE
from app.store.job_records import Claim
from app.store.tables import utcnow

log = logging.getLogger("conveyor.worker")
T = TypeVar("T")

FIRST_PAUSE = 0.1  # seconds before the first retry; doubled each time up to MAX_PAUSE
MAX_PAUSE = 1.0


@dataclass(slots=True)
class LeaseClock:
    """When the lease this worker last renewed expires, on the monotonic clock."""

    until: float

    @classmethod
    def of(cls, claim: Claim) -> LeaseClock:
        return cls(time.monotonic() + (claim.expires_at - utcnow()).total_seconds())

    def renewed(self, asked_at: float, lease_seconds: float) -> None:
        """A renewal asked for at `asked_at` succeeded (the database set its expiry a moment later)."""
        self.until = max(self.until, asked_at + lease_seconds)

    def remaining(self) -> float:
        return self.until - time.monotonic()


async def while_leased(
    attempt: Callable[[], Awaitable[T]],
    lease: LeaseClock,
    job_id: str,
    *,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
) -> T:
    """`attempt()`'s result, tried again with backoff while the database is unreachable and the lease
    lasts; the database's error once the next try would fall past the lease. `sleep` is injected so a
    test can record the pauses without patching asyncio for the whole process."""
    pause = FIRST_PAUSE
    while True:
        try:
            return await attempt()
        except DATABASE_UNAVAILABLE as error:
            if lease.remaining() <= pause:
                raise
            log.warning(
                "database unreachable; holding the job's result and trying again",
                extra={"job_id": job_id, "lease_left": round(lease.remaining(), 1), "error": repr(error)[:200]},
            )
        await sleep(pause)
        pause = min(pause * 2, MAX_PAUSE)
