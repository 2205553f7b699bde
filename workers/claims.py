"""Claims the interactive jobs a worker starts in the same moment with one statement (workers/grouped.py).

Ids the statement did not take (an expired lease, a duplicate message, a finished job, a batch item
sent on the interactive queue) are then tried one at a time, as every claim once was.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from app.store.jobs import Claim, JobRepository
from workers.grouped import Grouped

RunBlocking = Callable[..., Awaitable[Any]]  # runs a blocking function, with its arguments, off the loop


class ClaimBatcher:
    def __init__(self, jobs: JobRepository, lease_seconds: int, run_blocking: RunBlocking) -> None:
        self.jobs = jobs
        self.lease_seconds = lease_seconds
        self.run_blocking = run_blocking
        self._grouped: Grouped[str, Claim | None] = Grouped(self._claim_group)

    async def claim(self, job_id: str) -> Claim | None:
        return await self._grouped.submit(job_id)

    async def _claim_group(self, job_ids: list[str]) -> list[Claim | None | Exception]:
        claims = await self.run_blocking(self.jobs.claim_queued, job_ids, self.lease_seconds)
        # For a duplicate id in one group the first request holds the claim and the other finds the
        # job held, as it would one at a time.
        taken = [claims.pop(job_id, None) for job_id in job_ids]
        alone = [i for i, claim in enumerate(taken) if claim is None]
        outcomes: list[Claim | None | Exception] = list(taken)
        results = await asyncio.gather(*(self._claim_alone(job_ids[i]) for i in alone), return_exceptions=True)
        for i, result in zip(alone, results, strict=True):
            outcomes[i] = result
        return outcomes

    def _claim_alone(self, job_id: str) -> Awaitable[Claim | None]:
        return self.run_blocking(partial(self.jobs.claim, job_id, self.lease_seconds, batch_item=True))
