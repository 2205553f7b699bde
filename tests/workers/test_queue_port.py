"""The queue port writes the message Celery itself would: compared field by field with what
`send_task` puts on the same Redis list, so a Celery or kombu upgrade that changes it fails here."""

from __future__ import annotations

import asyncio
import base64
import json

import redis
import redis.asyncio as aioredis

from app.config import Settings
from app.queue import INTERACTIVE_QUEUE, RUN_JOB, enqueue_job
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


def test_enqueue_job_writes_what_send_task_writes(redis_db_url):
    url = redis_db_url
    celery = make_celery(Settings(_env_file=None, redis_url=url))
    celery.send_task(RUN_JOB, args=["job-1"], queue=INTERACTIVE_QUEUE)
    client = redis.Redis.from_url(url)
    theirs = json.loads(client.rpop(INTERACTIVE_QUEUE))

    async def ours() -> None:
        async with aioredis.Redis.from_url(url) as connection:
            await enqueue_job(connection, "job-1")

    asyncio.run(ours())
    mine = json.loads(client.rpop(INTERACTIVE_QUEUE))
    assert client.llen(INTERACTIVE_QUEUE) == 0
    flat_theirs, flat_mine = flatten(theirs), flatten(mine)
    assert set(flat_theirs) == set(flat_mine)
    differing = {key for key in flat_theirs if flat_theirs[key] != flat_mine[key]}
    assert differing <= PER_MESSAGE | {("body",)}, differing
    assert json.loads(base64.b64decode(mine["body"])) == json.loads(base64.b64decode(theirs["body"]))
    assert mine["headers"]["id"] == mine["headers"]["root_id"] == mine["properties"]["correlation_id"]
