"""The fake provider's in-process state: counters for /stats, the fail_times tallies, the server-wide
rate limit, and the last requests received (so tests can check what an adapter really sent).

All of it lives on one event loop, so plain integers suffice.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Mapping
from typing import Any

RECENT_REQUESTS = 50
_SECRET_HEADERS = ("authorization", "x-api-key", "api-key")


class TokenBucket:
    """`rate` requests per second with a burst of one second's worth."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate)
        self.tokens = self.capacity
        self.stamp = time.monotonic()

    def take(self) -> float | None:
        """None when a token was taken; otherwise the seconds until one is free."""
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return None
        return (1.0 - self.tokens) / self.rate


class FakeState:
    def __init__(self, rate_limit_per_second: float | None = None) -> None:
        self._bucket = TokenBucket(rate_limit_per_second) if rate_limit_per_second else None
        self.in_flight = 0
        self.reset()

    def reset(self) -> None:
        self.requests_total = 0
        self.peak_in_flight = self.in_flight
        self.rate_limited = 0
        self.by_status: Counter[int] = Counter()
        self.attempts: Counter[str] = Counter()
        self.recent: deque[dict[str, Any]] = deque(maxlen=RECENT_REQUESTS)

    def begin(self) -> None:
        self.requests_total += 1
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)

    def end(self) -> None:
        self.in_flight -= 1

    def attempt(self, model_string: str) -> int:
        """Count a request for this exact model string; returns its number, from 1 (for fail_times)."""
        self.attempts[model_string] += 1
        return self.attempts[model_string]

    def rate_limit_wait(self) -> float | None:
        return self._bucket.take() if self._bucket else None

    def count_rate_limited(self) -> None:
        self.rate_limited += 1

    def count_status(self, status: int) -> None:
        self.by_status[status] += 1

    def record(self, request_id: str, path: str, headers: Mapping[str, str], body: Any) -> None:
        """Keep the request as received; secret headers keep only their scheme."""
        shown = {}
        for name, value in headers.items():
            if name.lower() in _SECRET_HEADERS:
                scheme = value.split(" ", 1)[0] + " " if " " in value else ""
                value = f"{scheme}<redacted>"
            shown[name.lower()] = value
        self.recent.append({"id": request_id, "path": path, "headers": shown, "body": body})

    def snapshot(self) -> dict[str, Any]:
        return {
            "requests_total": self.requests_total,
            "in_flight": self.in_flight,
            "peak_in_flight": self.peak_in_flight,
            "sent_429": self.by_status[429],
            "rate_limited": self.rate_limited,
            "by_status": {str(status): n for status, n in sorted(self.by_status.items())},
            "requests_by_model": dict(self.attempts),
            "recent": list(self.recent),
        }
