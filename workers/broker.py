"""Kombu's Redis transport, reading a worker's backlog many messages per round trip.

Kombu's consumer takes one message per BRPOP and records it as unacknowledged with a pipeline of its
own: two round trips and a new client object per message, about a millisecond of the consumer's CPU,
which capped how many jobs a second one worker process could start. Here each BRPOP that returns a
message is followed by one RPOP of up to `BULK_READ` more from the same queue (never more than the
prefetch room left, and not after RPOPs that found the queue empty: see `_read_more`); the messages
that need it (not jobs': see `BulkQoS`) are recorded as unacknowledged in one pipeline before any is
delivered. Everything else (acks, restoring unacknowledged messages, visibility timeout, queue
rotation) is kombu's own. Only the worker consumes with it; publishing is unchanged.

It also keeps a worker alive through a Redis restart with jobs in flight (issue 15). When Celery's
consumer loses the broker it collects the connection: that closes the channel, which fails early
(deleting the auto-delete remote-control queue needs Redis) and so stays open, and then detaches the
transport from its kombu `Connection` (`transport.client = None`). The consumer then closes the
connection, hence the channel again; a channel still holding unacknowledged (late-ack) messages
restores them, and kombu's Redis channel builds a new connection pool for that from
`self.connection.client.hostname`: an AttributeError, not a connection error, so it escaped the
consumer's recovery and the worker shut down ("Unrecoverable error ... 'NoneType' object has no
attribute 'hostname'"). Idle workers have nothing to restore, so they survived. The same happened to
every ack of a job that ended after the loss, as the old channel's messages ack through it. Here a
channel remembers the address it was opened with, so a closed channel can still ack its messages
when their jobs end, and a restore that cannot reach Redis leaves the messages unacknowledged in
Redis (acked when their jobs end, else redelivered after the visibility timeout, their jobs
recovered sooner by the lease sweep) instead of failing the close.
"""

from __future__ import annotations

import logging
from queue import Empty
from time import time
from typing import Any

import redis
from kombu import Connection
from kombu.transport import redis as kombu_redis
from kombu.transport import virtual
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import dumps, loads

from app.queue import RUN_BATCH_ITEM, RUN_JOB

log = logging.getLogger("conveyor.worker")

BULK_READ = 64
MAX_SKIPPED_PROBES = 8

TRANSPORT = f"{__name__}:BulkTransport"  # for Celery's `broker_transport`

# Tasks whose messages the database recovers (see `BulkQoS`): no copy of them is kept in Redis.
UNRECORDED_TASKS = frozenset({RUN_JOB, RUN_BATCH_ITEM})


class BulkQoS(kombu_redis.QoS):
    """Kombu's Redis acknowledgement emulation, but for the messages whose jobs the database recovers.

    Kombu keeps a copy of every delivered, unacknowledged message in Redis (a hash and a sorted set)
    and deletes it at the ack: with two round trips and a MULTI/EXEC per message, a tenth of the
    worker's CPU per call. It pays for a redelivery after the visibility timeout (the hard time limit
    plus 5 minutes) should the worker die. A job's message needs none of that: its job row is the
    truth, and the periodic duties send it again sooner (a lease that expires is requeued within
    seconds of expiring, a queued call is re-sent after CONVEYOR_STRANDED_AFTER, 5 minutes, a batch
    item by the batch dispatcher once it counts as lost). So the messages of `UNRECORDED_TASKS` are
    held in memory only: acknowledged in memory, put back on the queue from memory when rejected
    with requeue or when the channel closes (a warm shutdown loses nothing). Only a worker killed
    outright loses them, and their jobs come back through those sweeps. Any other message (webhook
    sends, remote control) keeps kombu's record.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._recorded: set[str] = set()
        self._unrecorded: set[str] = set()

    def record_unacked(self, payloads: list[dict[str, Any]]) -> None:
        """Kombu's unacknowledged index for messages about to be delivered, in one round trip, for those
        that need it.

        Should Redis go away between the pop and this write, the messages are delivered all the same:
        they are off the queue already, and running them is better than dropping them (a crash before
        they end leaves their jobs to the lease and stranded-job sweeps, as for a lost message)."""
        recorded = []
        for payload in payloads:
            tag = payload["properties"]["delivery_tag"]
            if payload.get("headers", {}).get("task") in UNRECORDED_TASKS:
                self._unrecorded.add(tag)
            else:
                recorded.append(payload)
        if not recorded:
            return
        now = time()
        try:
            with self.pipe_or_acquire() as pipe:
                for payload in recorded:
                    properties = payload["properties"]
                    tag, info = properties["delivery_tag"], properties["delivery_info"]
                    pipe.zadd(self.unacked_index_key, {tag: now})
                    pipe.hset(self.unacked_key, tag, dumps([payload, info["exchange"], info["routing_key"]]))
                pipe.execute()
        except self.channel.connection_errors as exc:
            log.warning(
                "broker unreachable after popping messages: delivered without a redelivery record",
                extra={"count": len(recorded), "error": repr(exc)},
            )
        self._recorded.update(payload["properties"]["delivery_tag"] for payload in recorded)

    def append(self, message: Any, delivery_tag: str) -> None:
        if delivery_tag in self._recorded or delivery_tag in self._unrecorded:
            self._recorded.discard(delivery_tag)
            virtual.QoS.append(self, message, delivery_tag)  # in Redis already, or never: the memory part
        else:
            super().append(message, delivery_tag)

    def ack(self, delivery_tag: str) -> None:
        if delivery_tag in self._unrecorded:
            self._unrecorded.discard(delivery_tag)
            virtual.QoS.ack(self, delivery_tag)
        else:
            super().ack(delivery_tag)

    def reject(self, delivery_tag: str, requeue: bool = False) -> None:
        if delivery_tag in self._unrecorded:
            if requeue:
                with self.channel.conn_or_acquire() as client:
                    self._put_back([self._delivered[delivery_tag]], client, leftmost=True)
            self._unrecorded.discard(delivery_tag)
            virtual.QoS.ack(self, delivery_tag)
        else:
            super().reject(delivery_tag, requeue=requeue)

    def restore_unacked(self, client: Any = None) -> None:
        """At the channel's close: every held message back on its queue, from Redis's copy or from memory."""
        with self.channel.conn_or_acquire(client) as client:
            held = list(self._delivered.items())
            self._put_back([message for tag, message in held if tag in self._unrecorded], client)
            for tag, _ in held:
                if tag not in self._unrecorded:
                    self.restore_by_tag(tag, client=client)
        self._delivered.clear()
        self._unrecorded.clear()

    def restore_unacked_once(self, stderr: Any = None) -> None:
        """Hand back unacknowledged messages at close, unless Redis is unreachable (a lost connection):
        then recorded ones stay in Redis's unacknowledged index, and their jobs, still running here, ack
        them; unrecorded ones are acked in memory as their jobs end."""
        try:
            super().restore_unacked_once(stderr)
        except self.channel.connection_errors as exc:
            log.warning(
                "broker unreachable at channel close: %d messages in flight stay unacknowledged "
                "(acked when their jobs end, else their jobs are recovered by the database's sweeps)",
                len(self._delivered),
                extra={"error": repr(exc)},
            )

    def _put_back(self, messages: list[Any], client: Any, *, leftmost: bool = False) -> None:
        """Held messages back on their queues, in one round trip (a warm shutdown may hold thousands)."""
        if not messages:
            return
        pipe = client.pipeline()
        for message in messages:
            info = message.delivery_info
            self.channel._do_restore_message(message._raw, info["exchange"], info["routing_key"], pipe, leftmost)  # noqa: SLF001
        pipe.execute()


class BulkChannel(kombu_redis.Channel):
    QoS = BulkQoS
    bulk_reads = True  # off for good once the server refuses RPOP's count (Redis before 6.2)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._opened_with: dict[bool, dict[str, Any]] = {}
        self._empty_probes: dict[str, int] = {}  # by queue key: RPOPs in a row that found it empty
        self._probes_to_skip: dict[str, int] = {}
        super().__init__(*args, **kwargs)

    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        """Kombu's connection parameters, remembered: once the consumer has collected a lost connection
        the transport no longer knows its address, and this channel must still ack its jobs' messages."""
        transport = self.connection
        if (transport is None or transport.client is None) and asynchronous in self._opened_with:
            return dict(self._opened_with[asynchronous])
        params = super()._connparams(asynchronous=asynchronous)
        self._opened_with[asynchronous] = dict(params)
        return params

    def _brpop_read(self, **options: Any) -> bool:
        # kombu's own, but for `_read_more` and the one `record_unacked` (kombu 5.7).
        try:
            try:
                key__item = self.client.parse_response(self.client.connection, "BRPOP", **options)
            except self.connection_errors:
                self.client.connection.disconnect()  # the next poll reconnects
                raise
            if not key__item:
                raise Empty()
            key, item = bytes_to_str(key__item[0]), key__item[1]
            queue = key.rsplit(self.sep, 1)[0]
            self._queue_cycle.rotate(queue)
            payloads = decode_all([item, *self._read_more(key)])
            self.qos.record_unacked(payloads)
            for payload in payloads:
                self.connection._deliver(payload, queue)
            return True
        finally:
            self._in_poll = None
            self._flush_brpop_reauth()

    def _read_more(self, key: str) -> list[bytes]:
        """Up to `BULK_READ` more messages after a BRPOP's one, when the queue is likely to hold them.

        A worker that keeps up finds its queue empty after most BRPOPs, and the RPOP that looks is
        then a round trip for nothing (a twentieth of the worker's CPU per call at concurrency 1). So
        after an RPOP that found nothing the next ones are skipped, one more each time (up to
        `MAX_SKIPPED_PROBES`): a backlog that builds up is read in bulk again within that many
        messages, and reading goes on in bulk for as long as it lasts."""
        room = self.qos.can_consume_max_estimate()
        count = BULK_READ if room is None else min(BULK_READ, room - 1)
        if count <= 0 or not self.bulk_reads:
            return []
        if self._probes_to_skip.get(key, 0) > 0:
            self._probes_to_skip[key] -= 1
            return []
        try:
            with self.conn_or_acquire() as client:
                items = client.rpop(key, count) or []
        except redis.ResponseError:
            log.warning("this Redis cannot pop many messages at once (6.2 or later can); reading one at a time")
            self.bulk_reads = False
            return []
        empty = 0 if items else min(self._empty_probes.get(key, 0) + 1, MAX_SKIPPED_PROBES)
        self._empty_probes[key] = self._probes_to_skip[key] = empty
        return items


def decode_all(items: list[bytes]) -> list[dict[str, Any]]:
    """The messages popped in one read, decoded as one JSON array: the decoder then makes each key
    string once for the whole read instead of once per message (`json` shares keys within one call),
    which takes a held message from 4.4 to 2.5 KiB and a third of the decoding time when the worker
    reads its backlog 64 at a time. Kombu's own `loads`, so its `__type__` markers decode as before."""
    if len(items) == 1:
        return [loads(bytes_to_str(items[0]))]
    return loads(b"[" + b",".join(items) + b"]")


class BulkTransport(kombu_redis.Transport):
    Channel = BulkChannel


class PromptlyReconnecting(Connection):
    """A broker connection whose reconnection attempts come every 0.5 s, rising by 0.5 s to 5 s.

    Celery's consumer reconnects with kombu's defaults, 2 s rising by 2 s to 30 s: a Redis that was
    away for 2.1 s was found again only 6 s after it left, and after a longer outage up to 30 s after
    it was back. A connection attempt to a local Redis costs a refused connect; a worker that misses
    a minute of work costs far more."""

    def ensure_connection(self, *args: Any, **kwargs: Any) -> Connection:
        kwargs.setdefault("interval_start", 0.5)
        kwargs.setdefault("interval_step", 0.5)
        kwargs.setdefault("interval_max", 5.0)
        return super().ensure_connection(*args, **kwargs)
