"""Batches survive crashes: a worker SIGKILLed mid-batch, and the broker's batch queue emptied (a Redis
restart). Every item still runs to one result, billed once (one generation span per item)."""

from __future__ import annotations

import uuid

import pytest
import redis
from sqlalchemy import func, select

from app.store.tables import Job, JobStatus, Span
from tests.helpers import eventually, submit_batch, wait_for_batch
from tests.stack import start_stack
from workers.celery_app import BATCH_QUEUE

SCHEMA = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}


@pytest.fixture
def crash_stack(fake_provider):
    # Leases of 2 s: a dead worker's items are back within seconds; lost messages are sent again after 4 s.
    stack = start_stack(fake_provider.url, workers=0, CONVEYOR_JOB_LEASE_SECONDS="2", CONVEYOR_SWEEP_INTERVAL="0.5")
    yield stack
    stack.stop()


def submit(client, model: str, count: int) -> str:
    return submit_batch(client, {"name": "crash", "model": model, "output_schema": SCHEMA}, count)["id"]


def assert_each_item_ran_once(stack, client, batch_id: str, count: int) -> None:
    batch = wait_for_batch(client, batch_id, lambda b: b["status"] == "completed")
    assert batch["counts"]["succeeded"] == count and batch["counts"]["failed"] == 0
    lines = [line for line in client.get(f"/batches/{batch_id}/results").text.splitlines()]
    assert len(lines) == count
    with stack.db.transaction() as session:
        jobs = session.scalars(select(Job).where(Job.batch_id == batch_id)).all()
        generations = dict(
            session.execute(
                select(Span.job_id, func.count())
                .where(Span.job_id.in_([j.id for j in jobs]), Span.type == "generation")
                .group_by(Span.job_id)
            ).all()
        )
    assert sorted(j.custom_id for j in jobs) == sorted(f"item-{i}" for i in range(count))
    assert all(j.status == JobStatus.succeeded and set(j.result["json_payload"]) == {"ok"} for j in jobs)
    assert len(generations) == count and set(generations.values()) == {1}  # one billed attempt each


def test_a_worker_killed_mid_batch_loses_and_repeats_nothing(crash_stack, fake_provider):
    stack = crash_stack
    model = f"fake/crash?latency_ms=400&run={uuid.uuid4().hex[:8]}"
    doomed = stack.start_worker(concurrency=20)
    with stack.client(stack.new_key()) as client:
        batch_id = submit(client, model, 120)
        wait_for_batch(client, batch_id, lambda b: b["counts"]["succeeded"] >= 20 and b["counts"]["running"] > 0)
        stack.kill_worker(doomed)
        stack.start_worker(concurrency=20)
        assert_each_item_ran_once(stack, client, batch_id, 120)
        with stack.db.transaction() as session:
            attempts = session.scalars(select(Job.delivery_attempts).where(Job.batch_id == batch_id)).all()
        assert max(attempts) == 2  # the items the dead worker held ran again, once
    assert 120 < fake_provider.requests_for(model) <= 120 + sum(a - 1 for a in attempts)  # abandoned calls only


def test_items_whose_messages_vanished_with_redis_still_run(crash_stack):
    stack = crash_stack
    model = f"fake/flush?latency_ms=300&run={uuid.uuid4().hex[:8]}"
    stack.start_worker(concurrency=10)
    broker = redis.Redis.from_url(stack.settings.redis_url)
    with stack.client(stack.new_key()) as client:
        batch_id = submit(client, model, 150)
        wait_for_batch(client, batch_id, lambda b: b["counts"]["succeeded"] >= 10)
        # A window's worth of messages waits on the broker most of the time; between dispatcher rounds the
        # worker can drain it for a moment, so wait for messages to be there rather than sample once.
        eventually(lambda: broker.llen(BATCH_QUEUE), 10, what="a batch item message on the broker", poll=0.02)
        broker.delete(BATCH_QUEUE, "unacked", "unacked_index", "unacked_mutex")  # what a Redis restart loses
        assert_each_item_ran_once(stack, client, batch_id, 150)
