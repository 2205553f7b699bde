"""Global, token-aware rate limits per model and provider key, enforced in Redis across processes.

`RateLimitConfig.parse(settings.rate_limits)` reads `CONVEYOR_RATE_LIMITS`; `RateLimiter.acquire`
returns a `Permit` once a request fits; `Permit.release(actual_tokens)` gives the slot back and
corrects the token estimate; `RateLimiter.penalize` spreads a provider 429 to every process.
"""

from app.ratelimit.limiter import Decision, Permit, RateLimiter, RateLimitWaitExceeded
from app.ratelimit.limits import (
    DEFAULT_OUTPUT_TOKENS,
    ModelLimits,
    RateLimitConfig,
    RateLimitConfigError,
    estimate_tokens,
)

__all__ = [
    "DEFAULT_OUTPUT_TOKENS",
    "Decision",
    "ModelLimits",
    "Permit",
    "RateLimitConfig",
    "RateLimitConfigError",
    "RateLimitWaitExceeded",
    "RateLimiter",
    "estimate_tokens",
]
