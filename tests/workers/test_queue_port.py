"""The queue port writes the message Celery itself would: compared field by field with what
`send_task` puts on the same Redis list, so a Celery or kombu upgrade that changes it fails here."""

from __future__ import annotations

import asyncio
import base64
import json

import redis
import redis.asyncio as aioredis

from app.config import Settings
from app.queue import (
    BATCH_QUEUE,
    DELIVER_WEBHOOK,
    INTERACTIVE_QUEUE,
    RUN_BATCH_ITEM,
    RUN_JOB,
    WEBHOOK_QUEUE,
    TaskQueue,
    broker_client,
    enqueue_job,
)
from app.store import keys
from workers.celery_app import make_celery

PER_MESSAGE = {("headers", "id"), ("headers", "root_id"), ("headers", "origin"), ("properties", "correlation_id")}
PER_MESSAGE |= {("properties", "reply_to"), ("properties", "delivery_tag")}


def flatten(message: dict) -> dict[tuple[str, ...], object]:
    flat = {}
    for key, value in message.items():
        if isinstance(value, dict) and key != "stamps" and key != "delivery_info":
            flat.update({(key, *inner): v for inner, v in flatten(value).items()})
        else:
            flat[(key,)] = value
    return flat


def assert_same_message(theirs: dict, mine: dict) -> None:
    """The same fields, equal but for those that are per message, and the same decoded body."""
    flat_theirs, flat_mine = flatten(theirs), flatten(mine)
    assert set(flat_theirs) == set(flat_mine)
    differing = {key for key in flat_theirs if flat_theirs[key] != flat_mine[key]}
    assert differing <= PER_MESSAGE | {("body",)}, differing
    assert json.loads(base64.b64decode(mine["body"])) == json.loads(base64.b64decode(theirs["body"]))


def sent_by_celery(url: str, task: str, args: list, queue: str) -> tuple[redis.Redis, dict]:
    """What Celery's own `send_task` puts on `queue`, taken off it, and a client of that Redis."""
    make_celery(Settings(_env_file=None, redis_url=url)).send_task(task, args=args, queue=queue)
    client = redis.Redis.from_url(url)
    return client, json.loads(client.rpop(queue))


def test_enqueue_job_writes_what_send_task_writes(redis_db_url):
    url = redis_db_url
    client, theirs = sent_by_celery(url, RUN_JOB, ["job-1"], INTERACTIVE_QUEUE)

    async def ours() -> None:
        async with aioredis.Redis.from_url(url) as connection:
            await enqueue_job(connection, "job-1", counts_key=keys.METRICS_COUNTS)

    asyncio.run(ours())
    mine = json.loads(client.rpop(INTERACTIVE_QUEUE))
    assert client.llen(INTERACTIVE_QUEUE) == 0
    assert_same_message(theirs, mine)
    assert mine["headers"]["id"] == mine["headers"]["root_id"] == mine["properties"]["correlation_id"]


def test_batch_items_are_pushed_as_the_messages_send_task_writes(redis_db_url):
    url = redis_db_url
    client, theirs = sent_by_celery(url, RUN_BATCH_ITEM, ["item-1"], BATCH_QUEUE)
    TaskQueue(broker_client(Settings(_env_file=None, redis_url=url))).enqueue_batch_items(["item-1"])
    mine = json.loads(client.rpop(BATCH_QUEUE))
    assert_same_message(theirs, mine)


def taken(client: redis.Redis, queue: str) -> list[tuple[str, list, bool]]:
    """Each message on `queue`, oldest first: its task, its arguments, whether it carries an ETA."""
    found = []
    while (raw := client.rpop(queue)) is not None:
        message = json.loads(raw)
        args = json.loads(base64.b64decode(message["body"]))[0]
        found.append((message["headers"]["task"], args, message["headers"]["eta"] is not None))
    return found


def test_the_task_queue_puts_each_message_on_its_own_queue(redis_db_url):
    url = redis_db_url
    queue = TaskQueue(broker_client(Settings(_env_file=None, redis_url=url)))
    queue.enqueue_jobs(["job-1", "job-2"])
    queue.enqueue_batch_items(["item-1", "item-2"])
    queue.enqueue_batch_items([])
    queue.enqueue_webhook("delivery-1", "token-1")
    queue.defer("job-3", batch_item=False, countdown=5)
    queue.defer("item-3", batch_item=True, countdown=5)
    client = redis.Redis.from_url(url)
    assert taken(client, INTERACTIVE_QUEUE) == [
        (RUN_JOB, ["job-1"], False),
        (RUN_JOB, ["job-2"], False),
        (RUN_JOB, ["job-3"], True),
    ]
    assert taken(client, BATCH_QUEUE) == [
        (RUN_BATCH_ITEM, ["item-1"], False),
        (RUN_BATCH_ITEM, ["item-2"], False),
        (RUN_BATCH_ITEM, ["item-3"], True),
    ]
    assert taken(client, WEBHOOK_QUEUE) == [(DELIVER_WEBHOOK, ["delivery-1", "token-1"], False)]
