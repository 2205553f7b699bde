"""A lock is released only by its holder: never another worker's lock taken after ours expired."""

from __future__ import annotations

import asyncio

import redis
import redis.asyncio as aioredis

from app.store import redis_locks


def test_only_the_holder_releases_the_lock(redis_db_url):
    url = redis_db_url
    client = redis.Redis.from_url(url)
    assert client.set("lock", "worker-a", nx=True, px=10_000)
    assert redis_locks.release(client, "lock", "worker-b") is False
    assert client.get("lock") == b"worker-a"
    assert redis_locks.release(client, "lock", "worker-a") is True
    assert client.get("lock") is None
    assert redis_locks.release(client, "lock", "worker-a") is False  # gone (expired): nothing to do

    async def async_side() -> tuple[bool, bool]:
        async with aioredis.Redis.from_url(url) as connection:
            await connection.set("lock", "worker-b", nx=True, px=10_000)
            return (
                await redis_locks.release_async(connection, "lock", "worker-a"),
                await redis_locks.release_async(connection, "lock", "worker-b"),
            )

    assert asyncio.run(async_side()) == (False, True)
