"""When the dispatcher's rounds come: a new batch starts at once (the API announces it and each worker
hears it), a worker whose last item ended asks for a round at once (its batch may be over), and the
items ending meanwhile bring a round forward only to the next `check_seconds`.

The round schedule is tested with rounds long enough apart that "at once" and "at the next round"
cannot be confused: nothing here measures how fast anything is."""

from __future__ import annotations

import threading
import time

import pytest
import redis
import redis.asyncio as aioredis

from app.store import keys
from tests.helpers import eventually, submit_batch
from workers.batch_starts import BatchStarts
from workers.event_loop import EventLoopThread
from workers.periodic import BatchDuties, PeriodicDuties

LONG = 60.0  # seconds between regular rounds, and between kicked ones: never reached by a test


class Rounds:
    """A dispatcher that records when each round ran."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def tick(self) -> int:
        self.times.append(time.monotonic())
        return 0


class NoCapacity:
    def register(self, member: str, slots: int) -> None:
        pass


@pytest.fixture
def duties(redis_db_url):
    client = redis.Redis.from_url(redis_db_url)
    rounds = Rounds()
    batch_duties = BatchDuties(
        rounds,  # type: ignore[arg-type]
        NoCapacity(),  # type: ignore[arg-type]
        client,
        member="test:1",
        slots=0,
        interval_seconds=LONG,
        check_seconds=LONG,
    )
    # The other duties come every LONG seconds: the loop runs only batch rounds here.
    periodic = PeriodicDuties(None, None, LONG, webhook_interval_seconds=LONG, batches=batch_duties)  # type: ignore[arg-type]
    periodic.start()
    eventually(lambda: len(rounds.times) == 1, 10, what="the first round, at start")
    yield batch_duties, rounds
    periodic.stop()
    client.close()


def test_a_kick_at_once_runs_a_round_even_right_after_one(duties):
    batch_duties, rounds = duties
    batch_duties.kick(at_once=True)
    eventually(lambda: len(rounds.times) == 2, 10, what="a round for the kick")
    batch_duties.kick(at_once=True)
    eventually(lambda: len(rounds.times) == 3, 10, what="another round for the next kick")


def test_items_ending_wait_for_the_next_check(duties):
    batch_duties, rounds = duties
    for _ in range(50):  # items ending: each kicks, none at once
        batch_duties.kick()
    time.sleep(1.0)
    assert len(rounds.times) == 1  # the next round is `check_seconds` after the last
    batch_duties.kick(at_once=True)  # then the worker's last item ends
    eventually(lambda: len(rounds.times) == 2, 10, what="the round the idle worker asked for")


def test_a_stop_ends_the_loop_without_another_round(redis_db_url):
    client = redis.Redis.from_url(redis_db_url)
    rounds = Rounds()
    batch_duties = BatchDuties(
        rounds,
        NoCapacity(),
        client,
        member="test:1",
        slots=0,
        interval_seconds=LONG,
        check_seconds=LONG,  # type: ignore[arg-type]
    )
    periodic = PeriodicDuties(None, None, LONG, webhook_interval_seconds=LONG, batches=batch_duties)  # type: ignore[arg-type]
    periodic.start()
    eventually(lambda: len(rounds.times) == 1, 10, what="the first round, at start")
    periodic.stop()  # kicks at once, to wake the loop: it ends instead of running that round
    time.sleep(0.5)
    batch_duties.kick(at_once=True)
    time.sleep(0.5)
    assert len(rounds.times) == 1
    client.close()


def test_each_worker_hears_a_new_batch(redis_db_url):
    loop = EventLoopThread("test-loop")
    heard = threading.Event()
    async_client = aioredis.Redis.from_url(redis_db_url)
    starts = BatchStarts(async_client, loop, heard.set)
    starts.start()
    try:
        client = redis.Redis.from_url(redis_db_url)

        def announce_and_hear() -> bool:  # announced again until the listener, subscribing, hears it
            client.publish(keys.BATCH_SUBMITTED_CHANNEL, "batch-1")
            return heard.wait(0.2)

        eventually(announce_and_hear, 10, what="the announcement heard")
        client.close()
    finally:
        starts.stop()
        loop.run(async_client.aclose())
        loop.stop()


def test_the_api_announces_each_batch_it_accepts(stack, client):
    listener = redis.Redis.from_url(stack.settings.redis_url).pubsub(ignore_subscribe_messages=True)
    listener.subscribe(keys.BATCH_SUBMITTED_CHANNEL)
    try:
        batch = submit_batch(client, {"name": "announced", "model": "fake/a"}, 3)

        def announced() -> bool:
            message = listener.get_message(timeout=0.5)
            return message is not None and message["data"].decode() == batch["id"]

        eventually(announced, 10, what="the batch's announcement")
    finally:
        listener.close()
