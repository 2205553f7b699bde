"""A Redis subscription kept open on the worker's event loop: reconnected with backoff whenever Redis
goes away, each message handed to a callback on the loop's thread."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub

log = logging.getLogger("conveyor.worker")

Subscribe = Callable[[PubSub], Awaitable[object]]  # e.g. lambda pubsub: pubsub.subscribe(channel)
OnMessage = Callable[[str, bytes], None]  # (channel, data) of each message or pattern message


async def listen_forever(client: aioredis.Redis, subscribe: Subscribe, on_message: OnMessage, what: str) -> None:
    """Until cancelled. `what` names the listener in the warning logged when its connection drops."""
    backoff = 0.1
    while True:
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            await subscribe(pubsub)
            backoff = 0.1
            async for message in pubsub.listen():
                if message.get("type") in ("message", "pmessage"):
                    channel = message["channel"]
                    on_message(channel.decode() if isinstance(channel, bytes) else channel, message["data"])
        except asyncio.CancelledError:
            raise
        except Exception:
            log.warning("%s lost its Redis connection; reconnecting", what, exc_info=True)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()
