"""Receives running jobs' stream messages from Redis for the API process's open streams.

One pub/sub connection per API process serves every open stream: a stream subscribes to its job's
channel (and waits for Redis to confirm, so nothing published after the enqueue can be missed),
and one reader task hands each message to that stream's queue. A lost connection is reported to
every stream as a `None` item, so it re-checks the job's stored state instead of waiting forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import redis.asyncio as aioredis

from app.services.stream_messages import StreamMessage
from app.store import keys

log = logging.getLogger("conveyor.streams")

CONFIRM_TIMEOUT = 5.0


class StreamHub:
    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis
        self._queues: dict[str, asyncio.Queue[StreamMessage | None]] = {}
        self._confirmations: dict[str, asyncio.Event] = {}
        self._pubsub: aioredis.client.PubSub | None = None
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._read(), name="conveyor-stream-hub")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ready.wait(), timeout=CONFIRM_TIMEOUT)

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    @contextlib.asynccontextmanager
    async def subscription(self, job_id: str) -> AsyncIterator[asyncio.Queue[StreamMessage | None]]:
        """A queue of the job's stream messages; subscribed (confirmed by Redis) before it is handed out."""
        channel = keys.job_stream_channel(job_id)
        queue: asyncio.Queue[StreamMessage | None] = asyncio.Queue()
        confirmed = asyncio.Event()
        self._queues[channel] = queue
        self._confirmations[channel] = confirmed
        try:
            await asyncio.wait_for(self._ready.wait(), timeout=CONFIRM_TIMEOUT)
            await self._pubsub.subscribe(channel)
            await asyncio.wait_for(confirmed.wait(), timeout=CONFIRM_TIMEOUT)
            yield queue
        finally:
            self._queues.pop(channel, None)
            self._confirmations.pop(channel, None)
            if self._pubsub is not None:
                with contextlib.suppress(Exception):
                    await self._pubsub.unsubscribe(channel)

    async def _read(self) -> None:
        backoff = 0.1
        while True:
            pubsub = self.redis.pubsub()
            try:
                await pubsub.subscribe(keys.STREAMS_IDLE_CHANNEL, *self._queues)
                self._pubsub = pubsub
                backoff = 0.1
                async for message in pubsub.listen():
                    self._dispatch(message)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("stream hub lost its Redis connection; reconnecting", exc_info=True)
                self._ready.clear()
                for queue in self._queues.values():
                    queue.put_nowait(None)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    def _dispatch(self, message: dict) -> None:
        channel = message.get("channel")
        channel = channel.decode() if isinstance(channel, bytes) else channel
        kind = message.get("type")
        if kind == "subscribe":
            if channel == keys.STREAMS_IDLE_CHANNEL:
                self._ready.set()
            event = self._confirmations.get(channel)
            if event is not None:
                event.set()
        elif kind == "message":
            queue = self._queues.get(channel)
            if queue is not None:
                try:
                    queue.put_nowait(StreamMessage.decode(message["data"]))
                except ValueError:
                    log.warning("unreadable stream message", extra={"channel": channel})
