"""A lock is released or extended only by its holder: never another worker's lock taken after ours expired."""

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


def test_only_the_holder_extends_the_lock(redis_db_url):
    url = redis_db_url

    async def scenario() -> tuple:
        async with aioredis.Redis.from_url(url) as client:
            await client.set("lock", "worker-a", nx=True, px=1_000)
            theirs = await redis_locks.extend_async(client, "lock", "worker-b", 60_000)
            ttl_after_theirs = await client.pttl("lock")
            ours = await redis_locks.extend_async(client, "lock", "worker-a", 60_000)
            ttl_after_ours = await client.pttl("lock")
            await client.delete("lock")
            gone = await redis_locks.extend_async(client, "lock", "worker-a", 60_000)
            return theirs, ttl_after_theirs, ours, ttl_after_ours, gone, await client.exists("lock")

    theirs, ttl_after_theirs, ours, ttl_after_ours, gone, exists = asyncio.run(scenario())
    assert theirs is False and ttl_after_theirs <= 1_000  # another's extension left our expiry alone
    assert ours is True and ttl_after_ours > 1_000
    assert gone is False and exists == 0  # an expired lock is not brought back
