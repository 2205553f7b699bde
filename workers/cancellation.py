"""Abandons running jobs that the API cancelled, within moments of the cancellation.

One pattern subscription per worker process (on the runtime's event loop) hears every cancellation;
a job thread registers its engine future while it runs, and a cancellation cancels that future,
which cancels the provider request in flight. A cancellation published before the thread registered
is caught by the flag the API sets alongside; should Redis lose both, the next lease renewal fails
(the job is no longer `running`) and the work is abandoned then.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass

import redis
import redis.asyncio as aioredis

from app.store import keys
from workers.event_loop import EventLoopThread

log = logging.getLogger("conveyor.worker")


@dataclass
class Watch:
    future: Future
    cancelled: bool = False


class CancelWatcher:
    def __init__(self, async_redis: aioredis.Redis, sync_redis: redis.Redis, loop: EventLoopThread) -> None:
        self.async_redis = async_redis
        self.sync_redis = sync_redis
        self.loop = loop
        self._watches: dict[str, Watch] = {}
        self._lock = threading.Lock()
        self._listener: Future | None = None

    def start(self) -> None:
        self._listener = self.loop.submit(self._listen())

    def stop(self) -> None:
        if self._listener is not None:
            self._listener.cancel()

    @contextlib.contextmanager
    def watch(self, job_id: str, future: Future) -> Iterator[Watch]:
        """While inside, a cancellation of `job_id` cancels `future` and sets `Watch.cancelled`."""
        watch = Watch(future)
        with self._lock:
            self._watches[job_id] = watch
        try:
            try:
                flagged = bool(self.sync_redis.exists(keys.job_cancelled_flag(job_id)))
            except redis.RedisError:
                flagged = False  # the lease renewal is the backstop
            if flagged:
                self._cancel(job_id)
            yield watch
        finally:
            with self._lock:
                if self._watches.get(job_id) is watch:
                    del self._watches[job_id]

    def _cancel(self, job_id: str) -> None:
        with self._lock:
            watch = self._watches.get(job_id)
        if watch is not None:
            watch.cancelled = True
            watch.future.cancel()

    async def _listen(self) -> None:
        backoff = 0.1
        while True:
            pubsub = self.async_redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.psubscribe(keys.JOB_CANCEL_PATTERN)
                backoff = 0.1
                async for message in pubsub.listen():
                    if message.get("type") == "pmessage":
                        channel = message["channel"]
                        channel = channel.decode() if isinstance(channel, bytes) else channel
                        self._cancel(keys.job_id_from_cancel_channel(channel))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("cancellation listener lost its Redis connection; reconnecting", exc_info=True)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
