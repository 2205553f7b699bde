"""Waits for jobs to finish by listening to the workers' announcements on Redis pub/sub.

One pattern subscription per API process serves every waiting request, instead of a Redis
connection per request. Pub/sub does not store messages, so a waiter also re-checks the job's
stored state now and then: a message lost to a reconnect costs seconds, never a hung request.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub

from app.services.pubsub_listener import listen_forever
from app.store import keys


class Announcement(asyncio.Event):
    """Set when the job's done channel speaks; `message` is what it said last (None after a wake-up
    for a reconnect or a re-check)."""

    message: bytes | None = None


class JobWaiter:
    def __init__(self, redis: aioredis.Redis, *, recheck_seconds: float = 5.0) -> None:
        self.redis = redis
        self.recheck_seconds = recheck_seconds
        self._events: dict[str, list[Announcement]] = {}
        self._task: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._listen(), name="conveyor-job-waiter")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._subscribed.wait(), timeout=5)

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    @contextlib.contextmanager
    def expect(self, job_id: str):  # noqa: ANN201 - yields an Announcement
        """Register interest in a job *before* it is enqueued, so its announcement cannot be missed."""
        event = Announcement()
        self._events.setdefault(job_id, []).append(event)
        try:
            yield event
        finally:
            waiters = self._events.get(job_id, [])
            if event in waiters:
                waiters.remove(event)
            if not waiters:
                self._events.pop(job_id, None)

    async def wait(self, event: asyncio.Event, is_done: Callable[[], Awaitable[bool]], timeout: float) -> bool:
        """True once the job is done (announced, or found done on a re-check); False on timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return await is_done()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), timeout=min(self.recheck_seconds, remaining))
            # Announced, re-check time, or a reconnect woke everyone: the stored state decides.
            if await is_done():
                return True
            event.clear()

    async def _listen(self) -> None:
        async def subscribe(pubsub: PubSub) -> None:
            await pubsub.psubscribe(keys.JOB_DONE_PATTERN)
            self._subscribed.set()

        # On a lost connection every waiter re-checks the stored state now.
        await listen_forever(
            self.redis, subscribe, self._announced, "the job-announcement listener", on_lost=self._wake_all
        )

    def _announced(self, channel: str, data: bytes) -> None:
        for event in self._events.get(keys.job_id_from_done_channel(channel), []):
            event.message = data
            event.set()

    def _wake_all(self) -> None:
        for events in self._events.values():
            for event in events:
                event.set()
