"""Fixtures for the rate limiter: a real Redis (DB 0 of `CONVEYOR_TEST_REDIS_URL`) and a fresh model
name per test, so scopes never collide and nothing needs flushing (the keys expire on their own)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable

import pytest

REDIS_BASE = os.environ.get("CONVEYOR_TEST_REDIS_URL", "redis://127.0.0.1:6379")


@pytest.fixture
def redis_url() -> str:
    return REDIS_BASE.rstrip("/") + "/0"


@pytest.fixture
def model() -> str:
    return f"test/{uuid.uuid4().hex[:12]}"


def max_in_window(times: Iterable[float], window: float) -> int:
    """The most events in any window of `window` seconds (windows start at an event)."""
    ordered = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(ordered):
        while t - ordered[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


def max_overlap(intervals: Iterable[tuple[float, float]]) -> int:
    """The most intervals open at one instant."""
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    best = current = 0
    for _, change in events:  # at equal times the -1 sorts first: touching intervals do not overlap
        current += change
        best = max(best, current)
    return best
