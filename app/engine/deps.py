"""What the engine takes from outside, built once per process: `EngineDeps`.

Every call of a process shares the same providers, prices, cache, rate limiter, clock and sleep, so
they travel as one frozen object from the worker's bootstrap (workers/runtime.py) down to each model's
attempt loop (app/engine/fallback.py), instead of as a dozen parameters re-threaded at every level.
What changes from call to call (the output schema, the attempt budget, the listener, the admission)
travels separately, as the fallback chain's `CallPlan`. Tests replace `sleep` and `clock`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from app.engine.cost import PriceTable
from app.providers.base import ModelResolver

if TYPE_CHECKING:
    from app.config import Settings
    from app.engine.cache import ResultCache
    from app.engine.observer import AttemptObserver
    from app.ratelimit import RateLimiter

Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class RateLimitPolicy:
    """How long a 429 may make us wait on the same model before falling back instead."""

    max_retry_after: float = 20.0  # seconds; a longer Retry-After sends the call to the next model
    retries: int = 2  # waits per model
    default_wait: float = 1.0  # when the 429 carries no Retry-After


@dataclass(frozen=True)
class EngineDeps:
    """Everything `complete_task` needs from outside; `sleep` and `clock` are injectable for tests.

    `rate_limiter`: the global limiter every provider request must get a permit from (workers); None
    admits every request at once (the API process, which makes no provider calls)."""

    resolver: ModelResolver
    prices: PriceTable
    cache: ResultCache | None = None
    platform_fee_rate: float = 0.0
    max_retry_after: float = 20.0
    rate_limit_retries: int = 2
    sleep: Sleep = field(default=asyncio.sleep)
    clock: Clock = field(default=utc_now)  # must return aware UTC datetimes
    rate_limiter: RateLimiter | None = None
    observer: AttemptObserver | None = None  # told of each model attempt (tracing); None: nobody

    @property
    def rate_limit(self) -> RateLimitPolicy:
        """The 429 patience, as the attempt loop reads it (kept flat above: one setting a field)."""
        return RateLimitPolicy(max_retry_after=self.max_retry_after, retries=self.rate_limit_retries)

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        resolver: ModelResolver,
        cache: ResultCache | None,
        rate_limiter: RateLimiter | None = None,
        observer: AttemptObserver | None = None,
    ) -> EngineDeps:
        """The production wiring: fees, rate-limit patience and the price file come from settings."""
        return cls(
            resolver=resolver,
            prices=PriceTable.from_path(settings.price_table_path or None),
            cache=cache,
            platform_fee_rate=settings.platform_fee_rate,
            max_retry_after=settings.max_retry_after_seconds,
            rate_limit_retries=settings.rate_limit_retries,
            rate_limiter=rate_limiter,
            observer=observer,
        )
