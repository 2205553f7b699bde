"""Claims the jobs a worker starts in the same moment with one statement (workers/grouped.py).

Ids the group's statement did not take (an expired lease, a duplicate message, a finished job) are
then tried one at a time, as every claim once was.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from app.store.job_records import Claim
from workers.grouped import Grouped

RunBlocking = Callable[..., Awaitable[Any]]  # runs a blocking function, with its arguments, off the loop


ClaimMany = Callable[[list[str]], dict[str, Claim]]  # blocking: the claims it made, by job id
ClaimOne = Callable[[str], Claim | None]  # blocking


class ClaimBatcher:
    def __init__(self, claim_many: ClaimMany, claim_one: ClaimOne, run_blocking: RunBlocking) -> None:
        self.claim_many = claim_many
        self.claim_one = claim_one
        self.run_blocking = run_blocking
        self._grouped: Grouped[str, Claim | None] = Grouped(self._claim_group)

    async def claim(self, job_id: str) -> Claim | None:
        return await self._grouped.submit(job_id)

    async def _claim_group(self, job_ids: list[str]) -> list[Claim | None | Exception]:
        claims = await self.run_blocking(self.claim_many, job_ids)
        # For a duplicate id in one group the first request holds the claim and the other finds the
        # job held, as it would one at a time.
        taken = [claims.pop(job_id, None) for job_id in job_ids]
        alone = [i for i, claim in enumerate(taken) if claim is None]
        outcomes: list[Claim | None | Exception] = list(taken)
        results = await asyncio.gather(
            *(self.run_blocking(self.claim_one, job_ids[i]) for i in alone), return_exceptions=True
        )
        for i, result in zip(alone, results, strict=True):
            outcomes[i] = result
        return outcomes
