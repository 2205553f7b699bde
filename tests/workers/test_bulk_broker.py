"""The worker's broker transport on real Redis: a backlog is read many messages per round trip but
never beyond the prefetch room, every message is delivered once, and acks leave kombu's
unacknowledged index empty while unacked messages stay in it (to be restored if the worker dies)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import redis
from kombu import Connection, Consumer, Exchange, Queue
from kombu.utils.json import dumps, loads

from app.queue import RUN_JOB
from workers.broker import BulkTransport, decode_all

QUEUE = Queue("bulk-test", Exchange("bulk-test", type="direct"), routing_key="bulk-test")


def publish(url: str, count: int) -> None:
    with Connection(url) as connection:
        producer = connection.Producer(serializer="json")
        for n in range(count):
            producer.publish({"n": n}, exchange=QUEUE.exchange, routing_key="bulk-test", declare=[QUEUE])


def test_a_backlog_is_read_in_bulk_within_the_prefetch_room_and_each_message_once(redis_db_url):
    url = redis_db_url
    publish(url, 100)
    client = redis.Redis.from_url(url)
    received: list[tuple[int, object]] = []
    with Connection(url, transport=BulkTransport) as connection:
        channel = connection.channel()
        consumer = Consumer(channel, [QUEUE], callbacks=[lambda body, message: received.append((body["n"], message))])
        consumer.qos(prefetch_count=10)
        consumer.consume()
        connection.drain_events(timeout=5)
        assert len(received) == 10  # one wake-up took the whole prefetch room, and no more
        assert client.hlen("unacked") == 10 and client.zcard("unacked_index") == 10
        assert client.llen("bulk-test") == 90
        held = 10
        while len(received) < 100:
            for _, message in received[-held:]:
                message.ack()
            before = len(received)
            connection.drain_events(timeout=5)
            held = len(received) - before
            assert 0 < held <= 10
        for _, message in received[-held:]:
            message.ack()
    assert [n for n, _ in received] == list(range(100))  # in order, each once
    assert client.hlen("unacked") == 0 and client.zcard("unacked_index") == 0


def test_messages_read_in_bulk_and_never_acked_go_back_to_the_queue(redis_db_url):
    url = redis_db_url
    publish(url, 20)
    with Connection(url, transport=BulkTransport) as connection:
        channel = connection.channel()
        received: list[int] = []
        consumer = Consumer(channel, [QUEUE], callbacks=[lambda body, message: received.append(body["n"])])
        consumer.qos(prefetch_count=8)
        consumer.consume()
        connection.drain_events(timeout=5)
        assert len(received) == 8
    # The connection closed with 8 unacknowledged: kombu restores them, as it does for one-by-one reads.
    client = redis.Redis.from_url(url)
    assert client.llen("bulk-test") == 20 and client.hlen("unacked") == 0


def test_a_redis_without_bulk_pops_is_read_one_message_at_a_time(monkeypatch, redis_db_url):
    url = redis_db_url
    publish(url, 5)
    single_rpop = redis.Redis.rpop

    def rpop_before_6_2(self, name, count=None):  # noqa: ANN001
        if count is not None:
            raise redis.ResponseError("wrong number of arguments for 'rpop' command")
        return single_rpop(self, name)

    monkeypatch.setattr(redis.Redis, "rpop", rpop_before_6_2)
    received: list[int] = []
    with Connection(url, transport=BulkTransport) as connection:
        channel = connection.channel()
        consumer = Consumer(
            channel, [QUEUE], callbacks=[lambda body, message: (received.append(body["n"]), message.ack())]
        )
        consumer.qos(prefetch_count=10)
        consumer.consume()
        for _ in range(5):
            connection.drain_events(timeout=5)
    assert received == [0, 1, 2, 3, 4]
    assert redis.Redis.from_url(url).hlen("unacked") == 0


def test_messages_decoded_together_equal_each_decoded_alone_and_share_their_keys():
    # kombu's typed markers (a datetime here) must decode as kombu's own `loads` decodes them.
    items = [dumps({"n": n, "headers": {"eta": datetime(2026, 12, 6, n, tzinfo=UTC)}}).encode() for n in range(3)]
    together = decode_all(items)
    assert together == [loads(item) for item in items]
    assert isinstance(together[2]["headers"]["eta"], datetime)
    first_keys, last_keys = (next(iter(message)) for message in (together[0], together[-1]))
    assert first_keys is last_keys  # one "n" string for the whole read
    assert decode_all(items[:1]) == [loads(items[0])]


def publish_jobs(url: str, count: int) -> None:
    """Messages shaped as Celery's for the job task: the ones whose jobs the database recovers."""
    with Connection(url) as connection:
        producer = connection.Producer(serializer="json")
        for n in range(count):
            producer.publish(
                {"n": n}, exchange=QUEUE.exchange, routing_key="bulk-test", declare=[QUEUE], headers={"task": RUN_JOB}
            )


@contextmanager
def consuming(url: str, *, prefetch: int) -> Iterator[tuple[Connection, Any, list[Any]]]:
    """A consumer on the bulk transport, and the messages it has received (none acked for it)."""
    received: list[Any] = []
    with Connection(url, transport=BulkTransport) as connection:
        channel = connection.channel()
        consumer = Consumer(channel, [QUEUE], callbacks=[lambda body, message: received.append(message)])
        consumer.qos(prefetch_count=prefetch)
        consumer.consume()
        yield connection, channel, received


def test_job_messages_are_held_in_memory_only_and_acked_there(redis_db_url):
    publish_jobs(redis_db_url, 6)
    publish(redis_db_url, 2)  # after them: any other task's messages keep kombu's copy in Redis
    client = redis.Redis.from_url(redis_db_url)
    with consuming(redis_db_url, prefetch=10) as (connection, channel, received):
        connection.drain_events(timeout=5)
        assert len(received) == 8
        assert client.hlen("unacked") == 2 and client.zcard("unacked_index") == 2  # the two others only
        for message in received:
            message.ack()
        assert client.hlen("unacked") == 0 and client.llen("bulk-test") == 0
        assert channel.qos.can_consume_max_estimate() == 10  # the whole prefetch room free again


def test_held_job_messages_go_back_to_the_queue_when_rejected_or_at_close(redis_db_url):
    publish_jobs(redis_db_url, 5)
    client = redis.Redis.from_url(redis_db_url)
    with consuming(redis_db_url, prefetch=10) as (connection, channel, received):
        connection.drain_events(timeout=5)
        assert len(received) == 5 and client.llen("bulk-test") == 0
        received[0].ack()
        received[1].reject(requeue=True)  # back at the head of the queue, at once
        assert [loads(m)["properties"]["delivery_tag"] for m in client.lrange("bulk-test", 0, -1)] == [
            received[1].delivery_tag
        ]
    # Closed with three held: a warm shutdown hands them back from memory, marked as redelivered.
    messages = [loads(m) for m in client.lrange("bulk-test", 0, -1)]
    assert len(messages) == 4 and client.hlen("unacked") == 0
    assert all(m["headers"]["redelivered"] for m in messages)


def test_after_finding_the_queue_empty_the_next_reads_skip_the_bulk_pop_then_look_again(redis_db_url):
    received: list[int] = []
    with Connection(redis_db_url, transport=BulkTransport) as connection:
        channel = connection.channel()
        consumer = Consumer(
            channel, [QUEUE], callbacks=[lambda body, message: (received.append(body["n"]), message.ack())]
        )
        consumer.qos(prefetch_count=50)
        consumer.consume()
        per_read = []
        publish(redis_db_url, 1)
        connection.drain_events(timeout=5)  # the bulk pop finds nothing: the next read goes without one
        per_read.append(len(received))
        publish(redis_db_url, 30)
        for _ in range(2):
            before = len(received)
            connection.drain_events(timeout=5)
            per_read.append(len(received) - before)
    assert per_read == [1, 1, 29]  # one read without the bulk pop, then the backlog in one read
    assert received == [0, *range(30)]
