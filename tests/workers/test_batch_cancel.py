"""Cancelling a queue batch under a rate limit stops the work at once (issue 12): items waiting for
rate-limit room count as running, and they used to run and bill after the cancel. The measure is how
many items start at the provider after the cancel: none."""

from __future__ import annotations

import json

import pytest
import redis
from sqlalchemy import func, select

from app.queue import BATCH_QUEUE
from app.store.tables import Job, Span
from tests.helpers import eventually, jobs_held_by_workers, run_label
from tests.stack import start_stack

LIMITS = json.dumps({"fake/capped-*": {"rpm": 600, "concurrency": 20}})
SCHEMA = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}


@pytest.fixture(scope="module")
def limited_stack(fake_provider):
    stack = start_stack(fake_provider.url, CONVEYOR_RATE_LIMITS=LIMITS)
    yield stack
    stack.stop()


def messages_of(stack, batch_id: str) -> list[bytes]:
    """The broker's messages (waiting, or delivered and unacknowledged) for the batch's items."""
    with stack.db.transaction() as session:
        job_ids = [job_id.encode() for job_id in session.scalars(select(Job.id).where(Job.batch_id == batch_id))]
    with redis.Redis.from_url(stack.settings.redis_url) as broker:
        waiting = broker.lrange(BATCH_QUEUE, 0, -1)
    held = [job_id.encode() for job_id in jobs_held_by_workers(stack.settings.redis_url, len(stack.workers))]
    return [message for message in [*waiting, *held] if any(job_id in message for job_id in job_ids)]


def test_after_a_cancel_no_item_starts_and_none_is_billed(limited_stack, fake_provider):
    stack = limited_stack
    model = f"fake/capped-{run_label()}?latency_ms=300"
    items = [{"custom_id": f"c{i}", "input": f"q{i}"} for i in range(300)]
    function = {"name": "capped", "model": model, "output_schema": SCHEMA}
    with stack.client(stack.new_key()) as client:
        batch = client.post("/batches", json={"function": function, "items": items}).json()

        def progress() -> dict:
            return client.get(f"/batches/{batch['id']}").json()["counts"]

        # Under way: some answered, and items claimed beyond what the limiter lets through.
        eventually(lambda: progress()["succeeded"] >= 10 and progress()["running"] > 0, what="the batch under way")
        cancelled = client.post(f"/batches/{batch['id']}/cancel").json()
        started = fake_provider.requests_for(model)
        assert cancelled["status"] == "cancelled"  # at once: nothing is left running
        counts = cancelled["counts"]
        assert counts["running"] == counts["queued"] == 0 and counts["cancelled"] >= 250
        eventually(lambda: fake_provider.stats()["in_flight"] == 0, what="the abandoned calls gone")
        # Every item's message acknowledged or dropped: no task is left that could still reach the
        # provider (one holding a limiter permit keeps its message unacknowledged until it ends).
        eventually(lambda: not messages_of(stack, batch["id"]), what="the batch's messages all handled")
        assert fake_provider.requests_for(model) == started  # no item started after the cancel
        after = client.get(f"/batches/{batch['id']}").json()
    assert after["counts"] == counts and after["cost"] == cancelled["cost"]  # nothing ran on, nothing billed
    with stack.db.transaction() as session:
        cancelled_ids = session.scalars(select(Job.id).where(Job.batch_id == batch["id"], Job.status == "cancelled"))
        spans = session.scalar(select(func.count()).select_from(Span).where(Span.job_id.in_(list(cancelled_ids))))
    assert spans == 0
