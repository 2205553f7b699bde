"""Claims the interactive jobs a worker starts in the same moment with one statement (group commit).

A worker with a backlog starts hundreds of jobs a second; a claim each is a pooled connection, a
round trip and a statement's CPU each, and that CPU is what bounds how many calls one process holds
in flight. Claims requested while a claim statement is running wait for the next one, which takes
them all, so a lone job is claimed at once and a burst shares statements. Ids the statement did not
take (an expired lease, a duplicate message, a finished job) are tried one at a time, as before.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from app.store.jobs import Claim, JobRepository

RunBlocking = Callable[..., Awaitable[Any]]  # runs a blocking function, with its arguments, off the loop

MAX_PER_STATEMENT = 500
STATEMENTS_AT_ONCE = 1


class ClaimBatcher:
    """Loop-only: `claim` is awaited on the worker's event loop; statements run on blocking threads."""

    def __init__(self, jobs: JobRepository, lease_seconds: int, run_blocking: RunBlocking) -> None:
        self.jobs = jobs
        self.lease_seconds = lease_seconds
        self.run_blocking = run_blocking
        self._waiting: list[tuple[str, asyncio.Future[Claim | None]]] = []
        self._statements = 0

    async def claim(self, job_id: str) -> Claim | None:
        future: asyncio.Future[Claim | None] = asyncio.get_running_loop().create_future()
        self._waiting.append((job_id, future))
        if self._statements < STATEMENTS_AT_ONCE:
            self._start_statement()
        return await future

    def _start_statement(self) -> None:
        taken, self._waiting = self._waiting[:MAX_PER_STATEMENT], self._waiting[MAX_PER_STATEMENT:]
        self._statements += 1
        asyncio.ensure_future(self._claim_all(taken))

    async def _claim_all(self, taken: list[tuple[str, asyncio.Future[Claim | None]]]) -> None:
        try:
            claims = await self.run_blocking(
                self.jobs.claim_queued, [job_id for job_id, _ in taken], self.lease_seconds
            )
        except Exception as error:  # the statement failed: every waiter hears it
            for _, future in taken:
                _settle(future, error=error)
            return
        finally:
            self._statements -= 1
            if self._waiting:
                self._start_statement()
        for job_id, future in taken:
            # For a duplicate id in one statement the first waiter holds the claim and the other finds
            # the job held, as it would one at a time.
            claim = claims.pop(job_id, None)
            if claim is not None:
                _settle(future, claim)
            else:
                asyncio.ensure_future(self._claim_alone(job_id, future))

    async def _claim_alone(self, job_id: str, future: asyncio.Future[Claim | None]) -> None:
        try:
            claim = await self.run_blocking(partial(self.jobs.claim, job_id, self.lease_seconds, batch_item=True))
        except Exception as error:
            _settle(future, error=error)
        else:
            _settle(future, claim)


def _settle(
    future: asyncio.Future[Claim | None], claim: Claim | None = None, *, error: Exception | None = None
) -> None:
    if future.done():  # its job stopped waiting (the loop is shutting down)
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(claim)
