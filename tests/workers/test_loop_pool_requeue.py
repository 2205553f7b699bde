"""The loop pool's contract for a task that raised (workers/loop_pool.py): acknowledged, unless it could
not reach the database or Redis, whatever raised it (SQLAlchemy, psycopg itself, redis-py): then its
message goes back to the queue, so a job whose claim was refused in an outage runs once the store is
back instead of waiting for the stranded-job sweep."""

from __future__ import annotations

import queue
import time

import psycopg
import pytest
import redis
from celery import Celery
from celery.exceptions import Reject
from sqlalchemy.exc import OperationalError

from workers.event_loop import EventLoopThread
from workers.loop_pool import REQUEUE_AFTER_SECONDS, LoopTasks, loop_pool

TASK = "conveyor.test.loop_pool_task"


@pytest.fixture
def pool():
    loop = EventLoopThread("test-loop")
    tasks = LoopTasks(loop)
    raised: list[BaseException] = []

    async def body() -> None:
        raise raised[0]

    app = Celery("test", set_as_current=False)
    tasks.register(app, TASK, body)
    pool = loop_pool(tasks)(limit=2, app=app)
    pool.on_start()
    yield pool, raised
    pool.on_stop()
    loop.stop()


def outcome_of(pool, raised: list[BaseException], error: BaseException) -> tuple:  # noqa: ANN001
    """What the pool hands the message's callback once a task raised `error`."""
    raised[:] = [error]
    outcomes: queue.Queue = queue.Queue()
    request = {"args": [], "kwargs": {}}
    pool.on_apply(None, args=(TASK, "task-1", request, b"", "application/json", "utf-8"), callback=outcomes.put)
    return outcomes.get(timeout=REQUEUE_AFTER_SECONDS + 10)


@pytest.mark.parametrize(
    "error",
    [
        psycopg.OperationalError("connection failed: server closed the connection unexpectedly"),
        OperationalError("UPDATE jobs ...", {}, ConnectionRefusedError("connection refused")),
        redis.ConnectionError("Connection refused"),
    ],
    ids=["psycopg", "sqlalchemy", "redis"],
)
def test_a_task_that_could_not_reach_the_store_goes_back_to_the_queue(pool, error):
    started = time.monotonic()
    failed, failure, _ = outcome_of(*pool, error)
    rejected = failure.exception.exc  # unwrapped as Celery's Request.on_failure unwraps it
    assert failed == 1 and isinstance(rejected, Reject) and rejected.requeue
    assert time.monotonic() - started >= REQUEUE_AFTER_SECONDS * 0.9  # after a pause, not in a loop


def test_a_task_that_failed_otherwise_is_acknowledged(pool):
    failed, failure, _ = outcome_of(*pool, ValueError("a bug"))
    assert failed == 0 and failure is None
