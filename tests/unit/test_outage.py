"""workers/outage.py: a write the database refuses is tried again while the lease lasts, and no longer."""

from __future__ import annotations

import asyncio
import time

import pytest
from sqlalchemy.exc import OperationalError

from workers.outage import LeaseClock, while_leased


def refusing(times: int):  # noqa: ANN201 - an attempt coroutine function, and its call log
    calls: list[float] = []

    async def attempt() -> bool:
        calls.append(time.monotonic())
        if len(calls) <= times:
            raise OperationalError("UPDATE jobs ...", {}, ConnectionRefusedError("connection refused"))
        return True

    return attempt, calls


class Pauses(list):
    """The pauses `while_leased` takes, recorded instead of slept."""

    async def sleep(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def pauses() -> Pauses:
    return Pauses()


def test_a_refused_write_is_retried_with_backoff_while_the_lease_lasts(pauses):
    attempt, calls = refusing(6)
    assert asyncio.run(while_leased(attempt, LeaseClock(time.monotonic() + 30), "job", sleep=pauses.sleep)) is True
    assert len(calls) == 7 and pauses == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]


def test_past_the_lease_the_database_error_goes_up(pauses):
    attempt, calls = refusing(100)
    with pytest.raises(OperationalError):
        asyncio.run(while_leased(attempt, LeaseClock(time.monotonic() + 0.15), "job", sleep=pauses.sleep))
    assert len(calls) == 2 and pauses == [0.1]  # the clock stands still: a pause of 0.1 s fits, 0.2 s would not
    attempt, calls = refusing(100)
    with pytest.raises(OperationalError):
        asyncio.run(while_leased(attempt, LeaseClock(time.monotonic() - 1), "job", sleep=pauses.sleep))
    assert len(calls) == 1  # a lease already gone: tried once, as a write is conditional on it anyway


def test_other_errors_are_not_retried(pauses):
    calls: list[int] = []

    async def attempt() -> bool:
        calls.append(1)
        raise ValueError("a bug")

    with pytest.raises(ValueError):
        asyncio.run(while_leased(attempt, LeaseClock(time.monotonic() + 30), "job", sleep=pauses.sleep))
    assert calls == [1]
