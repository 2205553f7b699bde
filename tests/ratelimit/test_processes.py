"""Budgets shared by real OS processes (`tests/ratelimit/holder.py`), a holder killed with SIGKILL, and
the scripts on fakeredis (the embedded broker when no redis-server is installed)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time

import fakeredis
import pytest
import redis.asyncio as aioredis

from app.ratelimit import RateLimitConfig, RateLimiter
from app.store import keys
from tests.fakeprovider import REPO_ROOT
from tests.ratelimit.conftest import max_in_window, max_overlap


def start_holders(redis_url: str, model: str, limits: dict, *, count: int = 2, **options: float) -> list:
    """Start `count` holder processes that begin acquiring together, 1.5 s from now (after imports)."""
    start_at = time.time() + 1.5
    command = [sys.executable, "-m", "tests.ratelimit.holder", redis_url, model, json.dumps({model: limits})]
    command += ["--start-at", str(start_at)]
    for name, value in options.items():
        command += [f"--{name}", str(value)]
    return [subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True) for _ in range(count)]


def intervals_of(processes: list) -> list[tuple[float, float]]:
    intervals = []
    for process in processes:
        out, _ = process.communicate(timeout=60)
        assert process.returncode == 0
        intervals += [tuple(pair) for pair in json.loads(out.strip().splitlines()[-1])["intervals"]]
    return intervals


def test_concurrency_is_capped_across_two_processes(redis_url, model):
    holders = start_holders(redis_url, model, {"concurrency": 3}, tasks=12, hold=0.1)
    intervals = intervals_of(holders)
    assert len(intervals) == 24
    assert max_overlap(intervals) == 3  # reached, never exceeded
    span = max(end for _, end in intervals) - min(start for start, _ in intervals)
    assert span >= 8 * 0.1 - 0.02  # 24 holds of 0.1 s, 3 at a time


def test_requests_are_paced_across_two_processes(redis_url, model):
    holders = start_holders(redis_url, model, {"rpm": 1200}, tasks=15, hold=0.0)
    grants = [start for start, _ in intervals_of(holders)]
    assert len(grants) == 30
    assert max(grants) - min(grants) >= 1.35  # 50 ms apart, less the slack
    assert max_in_window(grants, 0.5) <= 12


def test_the_slot_of_a_killed_process_is_reclaimed_after_its_lease(redis_url, model):
    [holder] = start_holders(redis_url, model, {"concurrency": 1}, count=1, tasks=1, hold=3600, lease=0.8)
    try:
        assert "granted" in json.loads(holder.stdout.readline())
    finally:
        holder.kill()  # SIGKILL: no release, no cleanup
        holder.wait()
    killed_at = time.monotonic()

    async def scenario():
        client = aioredis.Redis.from_url(redis_url)
        limiter = RateLimiter(client, RateLimitConfig.parse(json.dumps({model: {"concurrency": 1}})), key_names=keys)
        blocked = await limiter.try_acquire(model, estimated_tokens=1)
        permit = await limiter.acquire(model, estimated_tokens=1)
        reclaimed_after = time.monotonic() - killed_at
        await permit.release()
        await client.aclose()
        return blocked, reclaimed_after

    blocked, reclaimed_after = asyncio.run(scenario())
    assert blocked is None
    assert reclaimed_after <= 1.0  # within the 0.8 s lease (counted from the grant) plus a poll


@pytest.mark.parametrize("limits", [{"rpm": 6000, "tpm": 600000, "concurrency": 2}])
def test_the_scripts_run_on_fakeredis(limits):
    async def scenario():
        client = fakeredis.aioredis.FakeRedis()
        limiter = RateLimiter(client, RateLimitConfig.parse(json.dumps({"m/x": limits})), key_names=keys)
        first = await limiter.acquire("m/x", estimated_tokens=100)
        second = await limiter.acquire("m/x", estimated_tokens=100)
        full = await limiter.attempt("m/x", estimated_tokens=100)
        await first.release(50)
        renewed = await second.renew()
        pause = await limiter.penalize("m/x", 0.1)
        third = await limiter.acquire("m/x", estimated_tokens=100)
        await second.release()
        await third.release()
        return full, renewed, pause, third.waited

    full, renewed, pause, waited = asyncio.run(scenario())
    assert full.permit is None and full.reason in ("concurrency", "rpm")
    assert renewed is True
    assert pause == pytest.approx(0.1, abs=0.01)
    assert waited >= 0.09
