"""The limiter against a real Redis: pacing, tokens, concurrency, leases, 429 penalties, waiting rules.

Two `RateLimiter` instances on one client stand for two processes: they share nothing but Redis.
Time scales are short (rates of 600-60,000 rpm) so the module runs in a few seconds.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis

from app.ratelimit import RateLimitConfig, RateLimiter, RateLimitWaitExceeded
from app.store import keys
from tests.ratelimit.conftest import max_in_window

Scenario = Callable[[aioredis.Redis, Callable[..., RateLimiter]], Awaitable[Any]]


def run(redis_url: str, limits: dict[str, dict[str, int]], scenario: Scenario) -> Any:
    """Run `scenario(client, make_limiter)` on a fresh loop; `make_limiter(**options)` shares the client."""
    config = RateLimitConfig.parse(json.dumps(limits))

    async def main() -> Any:
        client = aioredis.Redis.from_url(redis_url)
        try:
            return await scenario(client, lambda **options: RateLimiter(client, config, **options, key_names=keys))
        finally:
            await client.aclose()

    return asyncio.run(main())


def test_requests_are_paced_evenly_across_processes(redis_url, model):
    """1,200 rpm is one request every 50 ms, shared by two limiters, not a burst at the start."""

    async def scenario(client, make):
        first, second = make(), make()
        granted: list[float] = []

        async def one(limiter: RateLimiter) -> None:
            await limiter.acquire(model, estimated_tokens=1)
            granted.append(time.monotonic())

        start = time.monotonic()
        await asyncio.gather(*(one(first if i % 2 else second) for i in range(30)))
        return start, granted

    start, granted = run(redis_url, {model: {"rpm": 1200}}, scenario)
    elapsed = max(granted) - start
    # 30 requests 50 ms apart, less the 50 ms of scheduling slack: 1.4 s at least.
    assert elapsed >= 1.35
    assert elapsed < 2.5, "pacing lost throughput"
    assert max_in_window(granted, 0.5) <= 10 + 2  # 0.5 s holds 10 intervals; slack and jitter: 2
    assert max_in_window(granted, 0.1) <= 4


def test_tokens_per_minute_are_paced_and_corrected_by_actual_usage(redis_url, model):
    """60,000 tpm is 1,000 tokens/s; a release moves the budget by actual - estimated.
    Each case runs on a model of its own, all at once."""

    async def two_requests(limiter: RateLimiter, scope: str, first: int, used: int | None, then: int) -> float:
        taken = await limiter.acquire(scope, estimated_tokens=first)
        await taken.release(used)
        following = await limiter.acquire(scope, estimated_tokens=then)
        await following.release(then)
        return following.waited

    async def scenario(client, make):
        limiter = make()
        return await asyncio.gather(
            two_requests(limiter, model + "-exact", 500, 500, 500),  # paced: 500 tokens is 0.5 s
            two_requests(limiter, model + "-refund", 1000, 100, 100),  # 900 refunded: the next 100 go soon
            two_requests(limiter, model + "-unknown", 1000, None, 100),  # no usage known: the estimate stands
            two_requests(limiter, model + "-charged", 100, 1000, 100),  # 900 more charged
        )

    limits = {model + "-*": {"tpm": 60000}}
    exact, refunded, uncorrected, charged = run(redis_url, limits, scenario)
    assert 0.4 <= exact <= 0.7
    assert refunded <= 0.2
    assert 0.85 <= uncorrected <= 1.2
    assert 0.85 <= charged <= 1.2


def test_concurrency_is_capped_under_many_concurrent_tasks(redis_url, model):
    async def scenario(client, make):
        limiters = [make(), make()]
        held = peak = 0

        async def one(i: int) -> None:
            nonlocal held, peak
            permit = await limiters[i % 2].acquire(model, estimated_tokens=1)
            held += 1
            peak = max(peak, held)
            await asyncio.sleep(0.03)
            held -= 1
            await permit.release(1)

        start = time.monotonic()
        await asyncio.gather(*(one(i) for i in range(40)))
        slots = await client.zcard(keys.rate_limit_slots(f"{model}|"))
        return peak, time.monotonic() - start, slots

    peak, elapsed, slots_left = run(redis_url, {model: {"concurrency": 5}}, scenario)
    assert peak == 5
    assert elapsed >= 8 * 0.03  # 40 calls, 5 at a time
    assert slots_left == 0


def test_a_slot_of_a_dead_holder_expires_and_renewal_keeps_a_live_one(redis_url, model):
    async def scenario(client, make):
        limiter = make(lease_seconds=0.4)
        await limiter.acquire(model, estimated_tokens=1)  # never released: its holder "died"
        blocked = await limiter.try_acquire(model, estimated_tokens=1)
        reclaimed = await limiter.acquire(model, estimated_tokens=1)

        reclaimed.keep_alive(every=0.1)
        await asyncio.sleep(1.0)  # 2.5 leases: alive only because it is renewed
        still_blocked = await limiter.try_acquire(model, estimated_tokens=1)
        await reclaimed.release()
        after_release = await limiter.try_acquire(model, estimated_tokens=1)
        await asyncio.sleep(0.6)
        await after_release.release()  # the lease had run out: releasing is harmless
        lapsed = await after_release.renew()
        return blocked, reclaimed.waited, still_blocked, after_release, lapsed

    blocked, waited, still_blocked, after_release, lapsed = run(redis_url, {model: {"concurrency": 1}}, scenario)
    assert blocked is None
    assert 0.3 <= waited <= 0.7
    assert still_blocked is None
    assert after_release is not None
    assert lapsed is False


def test_renew_reports_a_slot_that_was_reclaimed(redis_url, model):
    async def scenario(client, make):
        limiter = make(lease_seconds=0.2)
        first = await limiter.acquire(model, estimated_tokens=1)
        held = await first.renew()
        await asyncio.sleep(0.3)
        taker = await limiter.acquire(model, estimated_tokens=1)  # prunes the expired slot
        lost = await first.renew()
        await taker.release()
        return held, lost

    assert run(redis_url, {model: {"concurrency": 1}}, scenario) == (True, False)


def test_a_429_pauses_every_waiter_and_halves_the_rate(redis_url, model):
    async def scenario(client, make):
        here, elsewhere = make(recovery_seconds=60), make(recovery_seconds=60)

        async def call(limiter: RateLimiter) -> float:
            permit = await limiter.acquire(model, estimated_tokens=1)
            granted = time.monotonic()
            await permit.release()
            return granted

        holder = await here.acquire(model, estimated_tokens=1)
        waiting = asyncio.create_task(call(elsewhere))  # already waiting for the slot
        await asyncio.sleep(0.05)
        penalized_at = time.monotonic()
        pause = await here.penalize(model, 0.6)
        await here.penalize(model, 0.3)  # a second 429 of the same burst: no shorter, no slower
        factor = float(await client.hget(keys.rate_limit_budget(f"{model}|"), "factor"))
        await holder.release()
        grants = await asyncio.gather(waiting, call(here), call(elsewhere))
        # After the pause, at half of 6,000 rpm: 20 ms apart instead of 10.
        start = time.monotonic()
        for _ in range(11):
            await (await here.acquire(model, estimated_tokens=1)).release()
        return pause, factor, penalized_at, min(grants), time.monotonic() - start

    pause, factor, penalized_at, first_grant, paced = run(redis_url, {model: {"rpm": 6000, "concurrency": 1}}, scenario)
    assert pause == pytest.approx(0.6, abs=0.01)
    assert factor == 0.5
    assert first_grant - penalized_at >= 0.58
    assert paced >= 10 * 0.02 - 0.05 - 0.01  # ten intervals of 20 ms, less the scheduling slack


def test_penalties_apply_to_limited_models_only(redis_url, model):
    async def scenario(client, make):
        limiter = make()
        unlimited = await limiter.penalize("other/model", 5)
        limited = await limiter.penalize(model, 0.2)
        permit = await limiter.acquire(model, estimated_tokens=1)
        return unlimited, limited, permit.waited

    unlimited, limited, waited = run(redis_url, {model: {}}, scenario)
    assert unlimited is None
    assert limited == pytest.approx(0.2, abs=0.01)
    assert waited >= 0.18  # `{}`: no budgets, but the 429 pause is shared


def test_unlimited_models_never_touch_redis():
    async def main():
        dead = aioredis.Redis.from_url("redis://127.0.0.1:1/0")  # nothing listens there
        limiter = RateLimiter(dead, RateLimitConfig.parse('{"openai/*": {"rpm": 1}}'), key_names=keys)
        permit = await limiter.acquire("fake/anything", estimated_tokens=100)
        tried = await limiter.try_acquire("fake/anything", estimated_tokens=100)
        await permit.release(5)
        renewed = await permit.renew()
        penalty = await limiter.penalize("fake/anything", 10)
        return permit, tried, renewed, penalty

    permit, tried, renewed, penalty = asyncio.run(main())
    assert permit.limits is None and permit.released and tried is not None
    assert renewed is False and penalty is None


def test_try_acquire_and_attempt_never_wait(redis_url, model):
    async def scenario(client, make):
        limiter = make(poll_seconds=0.02)
        first = await limiter.try_acquire(model, estimated_tokens=1)
        refused = await limiter.attempt(model, estimated_tokens=1)
        await first.release()
        again = await limiter.try_acquire(model, estimated_tokens=1)
        return first, refused, again

    first, refused, again = run(redis_url, {model: {"concurrency": 1}}, scenario)
    assert first is not None and again is not None
    assert refused.permit is None and refused.reason == "concurrency" and 0 < refused.wait <= 0.02


def test_max_wait_fails_fast_on_exact_waits_and_at_the_deadline_on_polls(redis_url, model):
    async def scenario(client, make):
        limiter = make()
        await limiter.acquire(model, estimated_tokens=1)  # 60 rpm: the next is 1 s away
        started = time.monotonic()
        with pytest.raises(RateLimitWaitExceeded) as paced:
            await limiter.acquire(model, estimated_tokens=1, max_wait=0.2)
        fail_fast = time.monotonic() - started

        slot = await limiter.acquire(model + "-c", estimated_tokens=1)
        started = time.monotonic()
        with pytest.raises(RateLimitWaitExceeded) as capped:
            await limiter.acquire(model + "-c", estimated_tokens=1, max_wait=0.3)
        deadline = time.monotonic() - started
        await slot.release()
        return paced.value, fail_fast, capped.value, deadline

    limits = {model: {"rpm": 60}, model + "-c": {"concurrency": 1}}
    paced, fail_fast, capped, deadline = run(redis_url, limits, scenario)
    assert paced.reason == "rpm" and 0.8 <= paced.retry_after <= 1.0 and paced.status_code == 429
    assert fail_fast < 0.1
    assert capped.reason == "concurrency"
    assert 0.28 <= deadline <= 0.5


def test_higher_priority_overtakes_the_queue_and_cancelled_waiters_leak_nothing(redis_url, model):
    async def scenario(client, make):
        limiter = make()
        holder = await limiter.acquire(model, estimated_tokens=1)
        order: list[str] = []

        async def one(name: str, priority: int) -> None:
            permit = await limiter.acquire(model, estimated_tokens=1, priority=priority)
            order.append(name)
            await asyncio.sleep(0.01)
            await permit.release()

        tasks = []
        for name, priority in [("batch-head", 0), ("batch-1", 0), ("batch-2", 0), ("gone", 0), ("interactive", 5)]:
            tasks.append(asyncio.create_task(one(name, priority)))
            await asyncio.sleep(0.01)
        tasks[3].cancel()
        await holder.release()
        await asyncio.gather(*tasks, return_exceptions=True)
        return order, await client.zcard(keys.rate_limit_slots(f"{model}|"))

    order, slots_left = run(redis_url, {model: {"concurrency": 1}}, scenario)
    # The head was already asking Redis; behind it the interactive call goes first.
    assert order == ["batch-head", "interactive", "batch-1", "batch-2"]
    assert slots_left == 0
