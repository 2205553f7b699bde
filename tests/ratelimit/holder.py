"""A separate process holding rate-limit permits, for the cross-process tests.

    python -m tests.ratelimit.holder REDIS_URL MODEL CONFIG_JSON --tasks 15 --hold 0.1 --start-at T

Prints one JSON line per grant (`{"granted": t}`), then `{"intervals": [[granted, released]...]}`;
times are `time.time()`. With a long `--hold` it keeps its permits until killed (a crashed worker).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import redis.asyncio as aioredis

from app.ratelimit import RateLimitConfig, RateLimiter
from app.store import keys


async def hold(args: argparse.Namespace) -> list[tuple[float, float]]:
    client = aioredis.Redis.from_url(args.redis_url)
    limiter = RateLimiter(client, RateLimitConfig.parse(args.config), lease_seconds=args.lease, key_names=keys)
    await asyncio.sleep(max(0.0, args.start_at - time.time()))
    intervals: list[tuple[float, float]] = []

    async def one() -> None:
        permit = await limiter.acquire(args.model, estimated_tokens=10)
        granted = time.time()
        print(json.dumps({"granted": granted}), flush=True)
        await asyncio.sleep(args.hold)
        intervals.append((granted, time.time()))  # measured inside the hold, so within the slot's lease
        await permit.release(10)

    await asyncio.gather(*(one() for _ in range(args.tasks)))
    await client.aclose()
    return intervals


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("redis_url")
    parser.add_argument("model")
    parser.add_argument("config")
    parser.add_argument("--tasks", type=int, default=1)
    parser.add_argument("--hold", type=float, default=0.1)
    parser.add_argument("--start-at", type=float, default=0.0)
    parser.add_argument("--lease", type=float, default=60.0)
    args = parser.parse_args()
    print(json.dumps({"intervals": asyncio.run(hold(args))}), flush=True)


if __name__ == "__main__":
    main()
