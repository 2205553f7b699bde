"""The queue port: queue names, task names, the messages, and the only ways onto the broker.

Two ways in. `enqueue_job` serves the API's call path (below). `TaskQueue` serves everything that
publishes from a thread: webhook dispatch, the batch dispatcher, the periodic re-sends and the
runner's deferrals, through a Celery app's pooled producers (`broker_client` builds the app; the
worker adds its consumer settings to the same app in workers/celery_app.py).

`enqueue_job` writes the Celery (protocol 2) message for a job straight onto its Redis list from
the caller's event loop: what `Celery.send_task` would write, without a thread hop, a pooled
producer and kombu's per-message publishing machinery (together a third of the API's CPU per call
when measured). Workers consume it with Celery as any other task message; `celery inspect`, Flower
and the rest of Celery's tooling see an ordinary task. The worker side (`workers/`) imports these
names from here; nothing in `app/` imports `workers/`.

The same round trip counts the job as submitted in the cluster's metrics (app/metrics/): the push is
a short script that also adds one to the counter, so counting costs no round trip of its own.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import uuid
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from celery import Celery

from app.config import Settings
from app.metrics.families import JOBS_SUBMITTED, counter_field

INTERACTIVE_QUEUE = "conveyor.interactive"
RUN_JOB = "conveyor.run_job"
# Batch items wait on their own queue, fed a window at a time by the batch dispatcher, so a batch of
# 100,000 never stands in front of an interactive call.
BATCH_QUEUE = "conveyor.batch"
RUN_BATCH_ITEM = "conveyor.run_batch_item"
# Webhook sends wait on receivers, not on models: their own queue keeps them out of the calls' way.
WEBHOOK_QUEUE = "conveyor.webhooks"
DELIVER_WEBHOOK = "conveyor.deliver_webhook"

_ORIGIN = f"gen{os.getpid()}@{socket.gethostname()}"
_REPLY_TO = str(uuid.uuid4())  # Celery's per-app id; unused with results ignored, but part of the shape
_EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
# LPUSH the message (as kombu's Redis transport does; consumers BRPOP) and count it, atomically.
_PUSH_COUNTED = "redis.call('LPUSH', KEYS[1], ARGV[1]) return redis.call('HINCRBYFLOAT', KEYS[2], ARGV[2], 1)"
_SUBMITTED_INTERACTIVE = counter_field(JOBS_SUBMITTED, INTERACTIVE_QUEUE)


def task_message(task: str, args: list[Any], queue: str) -> bytes:
    """The Redis list entry kombu's Redis transport writes for `send_task(task, args, queue=queue)`
    with Celery's protocol 2, JSON serialisation, no ETA and priority 0. (A job's trace context is not
    in its message but in its row: every message for the job, however sent, finds it there.)"""
    task_id = str(uuid.uuid4())
    body = json.dumps([args, {}, _EMBED]).encode()
    headers = {
        "lang": "py",
        "task": task,
        "id": task_id,
        "shadow": None,
        "eta": None,
        "expires": None,
        "group": None,
        "group_index": None,
        "retries": 0,
        "timelimit": [None, None],
        "root_id": task_id,
        "parent_id": None,
        "argsrepr": repr(args),
        "kwargsrepr": "{}",
        "origin": _ORIGIN,
        "ignore_result": None,
        "replaced_task_nesting": 0,
        "stamped_headers": None,
        "stamps": {},
    }
    message = {
        "body": base64.b64encode(body).decode(),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": headers,
        "properties": {
            "correlation_id": task_id,
            "reply_to": _REPLY_TO,
            "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": queue},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": str(uuid.uuid4()),
        },
    }
    return json.dumps(message).encode()


async def enqueue_job(redis: aioredis.Redis, job_id: str, *, counts_key: str) -> None:
    """Put an interactive job on its queue (kombu's Redis transport: LPUSH, consumers BRPOP), counted in
    the metrics hash `counts_key` (app/store/keys.py's, passed in: the port imports no store module)."""
    message = task_message(RUN_JOB, [job_id], INTERACTIVE_QUEUE)
    await redis.eval(_PUSH_COUNTED, 2, INTERACTIVE_QUEUE, counts_key, message, _SUBMITTED_INTERACTIVE)


def broker_client(settings: Settings) -> Celery:
    """A Celery app that publishes onto the broker: the settings every publisher needs. A worker's app
    is this one with its consumer settings added (workers/celery_app.py)."""
    app = Celery("conveyor", broker=settings.redis_url, set_as_current=False)
    app.conf.update(
        # Redis redelivers an unacked message after this long. It must exceed the longest a job may
        # run, or a slow job would be started twice; fast recovery of crashed jobs is the periodic duties' job.
        broker_transport_options={"visibility_timeout": settings.visibility_timeout_seconds},
        task_default_queue=INTERACTIVE_QUEUE,
        task_ignore_result=True,  # results live in the database, not in a Celery backend
        task_serializer="json",
        accept_content=["json"],
        broker_connection_retry_on_startup=True,
        # A worker outlives any Redis outage (Celery's default gives up after 100 attempts, ~50 min), and
        # jobs running when the connection drops keep running: their results are written to the database
        # and their messages acked once Redis is back (workers/broker.py); a redelivery meets the lease.
        broker_connection_max_retries=None,
        # Pooled broker connections for publishing. (None would *disable* the pool: a new connection and
        # queue declaration per enqueued job, measured as a third of the API's CPU time per call.)
        broker_pool_limit=64,
    )
    return app


class TaskQueue:
    """Puts jobs, batch items and webhook deliveries on their queues from a thread (Celery's `send_task`,
    each message naming its task and queue here, nowhere else)."""

    def __init__(self, celery: Celery) -> None:
        self.celery = celery

    def enqueue_jobs(self, job_ids: Sequence[str]) -> None:
        """Interactive jobs, one message each (a job requeued or found stranded)."""
        for job_id in job_ids:
            self.celery.send_task(RUN_JOB, args=[job_id], queue=INTERACTIVE_QUEUE)

    def enqueue_batch_items(self, job_ids: Sequence[str], *, countdown: float | None = None) -> None:
        """Batch item messages, on one pooled producer for the lot.

        Without a countdown they are the messages `send_task` would write (`task_message`), pushed in
        one pipeline: the dispatcher sends windows of up to hundreds of items, and `send_task` costs a
        round trip and Celery's message building for each. A countdown needs Celery's ETA handling."""
        if not job_ids:
            return
        with self.celery.producer_or_acquire() as producer:
            if countdown is None:
                with producer.channel.conn_or_acquire() as client:
                    pipe = client.pipeline(transaction=False)
                    for job_id in job_ids:
                        pipe.lpush(BATCH_QUEUE, task_message(RUN_BATCH_ITEM, [job_id], BATCH_QUEUE))
                    pipe.execute()
                return
            for job_id in job_ids:
                self.celery.send_task(
                    RUN_BATCH_ITEM, args=[job_id], queue=BATCH_QUEUE, countdown=countdown, producer=producer
                )

    def enqueue_webhook(self, delivery_id: str, token: str) -> None:
        self.celery.send_task(DELIVER_WEBHOOK, args=[delivery_id, token], queue=WEBHOOK_QUEUE)

    def defer(self, job_id: str, *, batch_item: bool, countdown: float) -> None:
        """Run a job again in `countdown` seconds (the rate limiter had no room for it)."""
        task, queue = (RUN_BATCH_ITEM, BATCH_QUEUE) if batch_item else (RUN_JOB, INTERACTIVE_QUEUE)
        self.celery.send_task(task, args=[job_id], queue=queue, countdown=countdown)
