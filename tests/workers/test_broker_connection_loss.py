"""The worker's broker channel through a lost Redis, on a private redis-server stopped and started
again: Celery's recovery (collect the connection, then close it) must not raise while messages are
unacknowledged, and those messages, still being worked on, are acked once Redis is back (issue 15:
the close raised AttributeError "'NoneType' object has no attribute 'hostname'" and the worker exited)."""

from __future__ import annotations

import redis
from kombu import Connection, Consumer, Exchange, Queue

from tests.faults.processes import PrivateRedis
from workers.broker import BulkTransport

QUEUE = Queue("loss-test", Exchange("loss-test", type="direct"), routing_key="loss-test")
# Like Celery's remote-control queue: a channel with one deletes it at close, the step that failed first.
BROADCAST = Queue("loss-test.control", Exchange("loss-test.fanout", type="fanout"), auto_delete=True)


def test_unacked_messages_survive_a_redis_restart_and_are_acked_after_it():
    server = PrivateRedis()
    server.start()
    try:
        with Connection(server.url) as publisher:
            producer = publisher.Producer(serializer="json")
            for n in range(5):
                producer.publish({"n": n}, exchange=QUEUE.exchange, routing_key="loss-test", declare=[QUEUE])
        received = []
        connection = Connection(server.url, transport=BulkTransport)
        channel = connection.default_channel  # as Celery's consumer uses
        consumer = Consumer(channel, [QUEUE, BROADCAST], callbacks=[lambda body, message: received.append(message)])
        consumer.qos(prefetch_count=10)
        consumer.consume()
        connection.drain_events(timeout=5)
        assert len(received) == 5
        channel._brpop_start()  # the worker's event loop always has a BRPOP waiting for more

        server.stop()
        # What Celery's consumer does on a lost connection (on_connection_error_after_connected).
        connection.collect(socket_timeout=1)
        connection.close()
        server.start()

        client = redis.Redis.from_url(server.url)
        assert client.hlen("unacked") == 5  # kept, not lost, while their work goes on
        for message in received:
            message.ack()
        assert client.hlen("unacked") == 0 and client.zcard("unacked_index") == 0
        assert client.llen("loss-test") == 0  # acked, not handed back to be run again
    finally:
        server.close()
