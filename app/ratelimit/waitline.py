"""One process's queue of waiters for one rate-limit scope.

Only the waiter at the head asks Redis; the others wait here for their turn, best priority first,
then first come first served. So a process with hundreds of waiting calls sends one request to Redis
per pacing interval instead of hundreds (no thundering herd), and an interactive call (higher
priority) overtakes the batch items waiting in the same process.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools


class WaitLine:
    def __init__(self) -> None:
        self._busy = False
        self._queue: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        # Set when a permit of this process is released: the head may get the freed slot or tokens at once.
        self.released = asyncio.Event()

    @property
    def idle(self) -> bool:
        return not self._busy and not self._queue

    async def enter(self, priority: int, timeout: float | None) -> None:
        """Wait to be the head. Raises TimeoutError after `timeout` seconds (None: no limit)."""
        if not self._busy and not self._queue:
            self._busy = True
            return
        turn = asyncio.get_running_loop().create_future()
        heapq.heappush(self._queue, (-priority, next(self._order), turn))
        try:
            async with asyncio.timeout(timeout):
                await turn
        except BaseException:
            if turn.done() and not turn.cancelled():
                self.leave()  # handed the turn as we gave up: pass it on
            else:
                turn.cancel()  # skipped by leave()
            raise

    def leave(self) -> None:
        """The head is done: hand the turn to the best waiter still waiting."""
        while self._queue:
            _, _, turn = heapq.heappop(self._queue)
            if not turn.done():
                turn.set_result(None)
                return
        self._busy = False

    async def pause(self, seconds: float, *, wake_on_release: bool) -> None:
        """The head sleeps until the budget may have room; a local release can cut it short."""
        if not wake_on_release:
            await asyncio.sleep(seconds)
            return
        try:
            async with asyncio.timeout(seconds):
                await self.released.wait()
        except TimeoutError:
            pass
