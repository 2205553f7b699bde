"""Redis down or restarting: `acquire` waits for it (within `max_wait`) instead of failing the call or
admitting unpaced requests."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from app.ratelimit import RateLimitConfig, RateLimiter, RateLimitWaitExceeded
from app.store import keys


def test_an_unreachable_redis_is_a_wait_bounded_by_max_wait():
    async def main():
        dead = aioredis.Redis.from_url("redis://127.0.0.1:1/0")  # nothing listens there
        limiter = RateLimiter(dead, RateLimitConfig.parse('{"openai/*": {"rpm": 100}}'), key_names=keys)
        started = time.monotonic()
        with pytest.raises(RateLimitWaitExceeded) as caught:
            await limiter.acquire("openai/gpt-4o-mini", estimated_tokens=10, max_wait=0.5)
        return caught.value, time.monotonic() - started

    exceeded, elapsed = asyncio.run(main())
    assert exceeded.reason == "unavailable" and exceeded.retry_after > 0
    assert 0.45 <= elapsed < 1.5  # kept trying until the deadline, then gave up


def test_a_redis_that_comes_back_grants_the_permit(redis_url, model):
    async def main():
        client = aioredis.Redis.from_url(redis_url)
        limiter = RateLimiter(client, RateLimitConfig.parse(json.dumps({model: {"rpm": 600}})), key_names=keys)
        real, failures = limiter._acquire, []

        async def flaky(**kwargs):  # noqa: ANN202 - the script's call signature
            if len(failures) < 3:
                failures.append(time.monotonic())
                raise RedisConnectionError("Connection refused")
            return await real(**kwargs)

        limiter._acquire = flaky
        try:
            permit = await limiter.acquire(model, estimated_tokens=10, max_wait=5)
            await permit.release(10)
            return permit, failures
        finally:
            await client.aclose()

    permit, failures = asyncio.run(main())
    assert permit.limits is not None and len(failures) == 3
    assert failures[1] - failures[0] >= 0.09 and failures[2] - failures[1] >= 0.19  # backing off
    assert permit.waited >= 0.3
