"""The global rate limiter against a provider with a rate limit of its own: 429s and achieved rate,
without the limiter, with it set slightly below the provider's limit, and set too high (429 feedback).

    .venv/bin/python -m bench.ratelimit [--rate 200] [--calls 2000] [--clients 100] [--latency-ms 50]

The fake provider runs as its own process and answers 429 (with Retry-After) above `--rate`
requests/s. Two client processes, each with `--clients` concurrent callers, make `--calls` successful
calls between them through the real OpenAI adapter. A caller that gets a 429 waits its Retry-After
and tries again, as the engine does; with the limiter it also calls `penalize`, so every caller in
both processes slows down. Redis: `--redis-url`, else $CONVEYOR_TEST_REDIS_URL or $REDIS_URL.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import uuid

import httpx

from app.config import Settings
from app.embedded import free_port
from app.errors import ProviderRateLimited
from app.providers.base import CompletionRequest, Message
from app.providers.registry import ProviderRegistry
from app.ratelimit import RateLimitConfig, RateLimiter, estimate_tokens
from app.store import keys
from bench.harness import ROOT, print_table
from tests.fakeprovider import start_fake_provider_process

PROCESSES = 2


async def client_process(args: argparse.Namespace) -> dict[str, float]:
    """One client process: `clients` callers sharing `calls` successful calls."""
    import redis.asyncio as aioredis

    registry = ProviderRegistry(Settings(_env_file=None, fake_provider_url=args.fake_url))
    resolved = registry.resolve(args.model)
    client = aioredis.Redis.from_url(args.redis_url)
    limiter = RateLimiter(client, RateLimitConfig.parse(args.limits), key_names=keys) if args.limits else None
    remaining = args.calls
    rate_limited = 0
    waited = 0.0
    await asyncio.sleep(max(0.0, args.start_at - time.time()))
    started = time.monotonic()

    async def caller(n: int) -> None:
        nonlocal remaining, rate_limited, waited
        while remaining > 0:
            remaining -= 1
            text = f"question {n}"
            while True:
                permit = None
                if limiter is not None:
                    permit = await limiter.acquire(args.model, estimated_tokens=estimate_tokens(text, 16))
                    waited += permit.waited
                request = CompletionRequest(model=resolved.model_id, messages=(Message("user", text),))
                try:
                    completion = await resolved.provider.complete(request)
                except ProviderRateLimited as err:
                    rate_limited += 1
                    retry_after = err.retry_after or 1.0
                    if limiter is not None:
                        await limiter.penalize(args.model, retry_after)
                        await permit.release(0)
                    await asyncio.sleep(retry_after)  # what the engine does on a short Retry-After
                    continue
                if permit is not None:
                    await permit.release(completion.usage.total_tokens)
                break

    await asyncio.gather(*(caller(n) for n in range(args.clients)))
    elapsed = time.monotonic() - started
    await registry.aclose()
    await client.aclose()
    return {"calls": args.calls, "rate_limited": rate_limited, "elapsed": elapsed, "waited": waited}


def run_scenario(args: argparse.Namespace, fake_url: str, limits: str) -> dict[str, float]:
    """Both client processes at once; figures summed (429s) or the slowest (elapsed)."""
    httpx.post(f"{fake_url}/stats/reset").raise_for_status()
    model = f"fake/bench-ratelimit-{uuid.uuid4().hex[:8]}?latency_ms={args.latency_ms}"  # a fresh budget
    start_at = time.time() + 2.0  # after the client processes' imports
    command = [sys.executable, "-m", "bench.ratelimit", "--client", "--model", model, "--fake-url", fake_url]
    command += ["--redis-url", args.redis_url, "--limits", limits, "--start-at", str(start_at)]
    command += ["--calls", str(args.calls // PROCESSES), "--clients", str(args.clients)]
    processes = [subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True) for _ in range(PROCESSES)]
    results = [json.loads(process.communicate()[0].strip().splitlines()[-1]) for process in processes]
    stats = httpx.get(f"{fake_url}/stats").json()
    elapsed = max(result["elapsed"] for result in results)
    calls = sum(result["calls"] for result in results)
    return {
        "calls": calls,
        "sent_429": stats["sent_429"],
        "requests": stats["requests_total"],
        "elapsed": elapsed,
        "rate": calls / elapsed,
        "mean_wait_ms": 1000 * sum(result["waited"] for result in results) / calls,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=200.0, help="the fake provider's limit, requests/s")
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=100, help="concurrent callers per process")
    parser.add_argument("--latency-ms", type=int, default=50)
    default_redis = os.environ.get("CONVEYOR_TEST_REDIS_URL") or os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379"
    parser.add_argument("--redis-url", default=default_redis)
    # The client process's own arguments.
    parser.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--fake-url", help=argparse.SUPPRESS)
    parser.add_argument("--limits", default="", help=argparse.SUPPRESS)
    parser.add_argument("--start-at", type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        print(json.dumps(asyncio.run(client_process(args))), flush=True)
        return

    fake = start_fake_provider_process(free_port(), rate_limit_per_second=args.rate)
    fake_url = f"http://127.0.0.1:{fake.args[fake.args.index('--port') + 1]}"
    scenarios = [
        ("no limiter", None),
        ("limiter at 90% of the provider's limit", 0.9),
        ("limiter at 150% (429 -> penalize)", 1.5),
    ]
    rows = []
    try:
        for name, share in scenarios:
            limits = json.dumps({"fake/bench-ratelimit-*": {"rpm": round(share * args.rate * 60)}}) if share else ""
            figures = run_scenario(args, fake_url, limits)
            rows.append(
                [
                    name,
                    "-" if share is None else f"{share * args.rate:.0f}/s",
                    figures["calls"],
                    figures["requests"],
                    figures["sent_429"],
                    f"{figures['elapsed']:.1f}",
                    f"{figures['rate']:.0f}",
                    f"{figures['mean_wait_ms']:.0f}",
                ]
            )
    finally:
        fake.terminate()
        fake.wait()
    header = ["scenario", "limit", "calls", "requests sent", "429s", "elapsed s", "calls/s", "limiter wait ms"]
    title = (
        f"{args.calls} calls from {PROCESSES} processes x {args.clients} callers, {args.latency_ms} ms latency; "
        f"the provider allows {args.rate:.0f} requests/s (a 1 s burst) and answers 429 above"
    )
    print_table(title, header, rows)


if __name__ == "__main__":
    main()
