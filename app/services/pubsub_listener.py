"""A Redis subscription kept open on an event loop: reconnected with backoff whenever Redis goes away,
each message handed to a callback on the loop's thread. The API's job waiter and the worker's
cancellation and new-batch listeners each keep one."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub

log = logging.getLogger("conveyor.pubsub")

Subscribe = Callable[[PubSub], Awaitable[object]]  # subscribes; called again after each reconnect
OnMessage = Callable[[str, bytes], None]  # (channel, data) of each message or pattern message


async def listen_forever(
    client: aioredis.Redis,
    subscribe: Subscribe,
    on_message: OnMessage,
    what: str,
    *,
    on_lost: Callable[[], None] | None = None,
) -> None:
    """Until cancelled. `what` names the listener in the warning logged when its connection drops;
    `on_lost` is called then, before the pause (messages may have been missed meanwhile)."""
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
            if on_lost is not None:
                on_lost()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()
