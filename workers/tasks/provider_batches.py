"""The worker's provider-batch loop: rounds of ProviderBatchDriver (app/services/provider_batches.py)
on the worker's event loop, by one worker at a time.

The Redis lock is held while this worker runs rounds and refreshed every tick; a worker that dies
stops refreshing, and another (or its restart) takes over within the lock's TTL
(`CONVEYOR_PROVIDER_BATCH_LOCK_SECONDS`, 5 by default). The driver's records make the take-over safe
at any point: it reconciles provider batches by their metadata.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from concurrent.futures import Future

from app.services.batch_completion import BatchCompletion
from app.services.provider_batches import ProviderBatchDriver, ProviderBatchPolicy
from app.store import keys, redis_locks
from app.store.batches import BatchRepository
from workers.runtime import WorkerRuntime

log = logging.getLogger("conveyor.provider_batches")


class ProviderBatchLoop:
    def __init__(self, runtime: WorkerRuntime, member: str) -> None:
        settings = runtime.settings
        self.runtime = runtime
        self.member = member
        self.tick = min(1.0, settings.provider_batch_poll_seconds)
        self.lock_seconds = settings.provider_batch_lock_seconds
        policy = ProviderBatchPolicy(
            poll_seconds=settings.provider_batch_poll_seconds,
            max_requests=settings.provider_batch_max_requests,
            max_bytes=settings.provider_batch_max_bytes,
        )

        async def blocking(function, *args):  # noqa: ANN001, ANN202
            return await asyncio.get_running_loop().run_in_executor(runtime.blocking, function, *args)

        completion = BatchCompletion(BatchRepository(runtime.db), runtime.dispatcher)
        self.driver = ProviderBatchDriver(
            runtime.db, runtime.engine_deps, completion, policy, blocking, on_ended=runtime.counts.count_endings
        )
        self._stop = asyncio.Event()
        self._future: Future | None = None

    def start(self) -> None:
        self._future = self.runtime.loop.submit(self._run())

    def stop(self) -> None:
        self.runtime.loop.loop.call_soon_threadsafe(self._stop.set)
        if self._future is not None:
            try:
                self._future.result(timeout=10)
            except Exception:  # best effort at shutdown
                log.warning("provider batch loop did not stop cleanly", exc_info=True)

    async def _run(self) -> None:
        client = self.runtime.async_redis
        while not self._stop.is_set():
            try:
                if await self._hold(client):
                    refresh = asyncio.create_task(self._refresh(client))
                    try:
                        await self.driver.round()
                    finally:
                        refresh.cancel()
            except Exception:  # Redis or the database briefly away: next tick
                log.exception("provider batch round failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=self.tick)
        await redis_locks.release_async(client, keys.PROVIDER_BATCH_LOCK, self.member)

    async def _hold(self, client) -> bool:  # noqa: ANN001
        ttl = int(self.lock_seconds * 1000)
        if await client.set(keys.PROVIDER_BATCH_LOCK, self.member, nx=True, px=ttl):
            return True
        return await redis_locks.extend_async(client, keys.PROVIDER_BATCH_LOCK, self.member, ttl)

    async def _refresh(self, client) -> None:  # noqa: ANN001
        while True:
            await asyncio.sleep(self.lock_seconds / 3)
            await self._hold(client)
