"""Releasing and extending a Redis lock held as `SET key member NX PX ttl`, only while it is still ours.

A GET followed by a DEL (or a PEXPIRE) is two commands: between them the lock can expire and be taken
by another worker, whose lock the DEL would then remove (or the PEXPIRE extend, keeping two holders).
One Lua script compares and acts atomically (the pattern Redis's own documentation gives for
single-instance locks).
"""

from __future__ import annotations

import redis
import redis.asyncio as aioredis

_COMPARE_AND_DELETE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('del', KEYS[1])
end
return 0
"""

_COMPARE_AND_PEXPIRE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""


def release(client: redis.Redis, key: str, member: str) -> bool:
    """True if the lock was ours and is gone; False if it had expired or is another's."""
    return bool(client.eval(_COMPARE_AND_DELETE, 1, key, member))


async def release_async(client: aioredis.Redis, key: str, member: str) -> bool:
    return bool(await client.eval(_COMPARE_AND_DELETE, 1, key, member))


async def extend_async(client: aioredis.Redis, key: str, member: str, ttl_ms: int) -> bool:
    """Keep our lock for `ttl_ms` more; False (and nothing changed) if it expired or is another's."""
    return bool(await client.eval(_COMPARE_AND_PEXPIRE, 1, key, member, ttl_ms))
