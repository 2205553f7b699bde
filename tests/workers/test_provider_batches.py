"""Batches through the provider's batch API (`execution: provider`), with a real worker and the fake
provider's OpenAI Batch API: the same results as on the queue at half the cost; answers out of schema
re-asked, errors falling back, expired lines run afresh, cancel, and a batch split by a lowered limit."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from sqlalchemy import select

from app.store.tables import Job, Span
from tests.stack import start_stack

SCHEMA = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}


@pytest.fixture(scope="module")
def pstack(fake_provider):
    stack = start_stack(
        fake_provider.url,
        CONVEYOR_PROVIDER_BATCH_POLL_SECONDS="0.2",
        CONVEYOR_PROVIDER_BATCH_MAX_REQUESTS="300",
    )
    yield stack
    stack.stop()


def submit(client, models, count: int, **extra) -> dict:
    items = [{"custom_id": f"item-{i}", "input": f"question {i}"} for i in range(count)]
    function = {"name": "overnight", "model": models, "output_schema": SCHEMA}
    response = client.post("/batches", json={"function": function, "items": items, **extra})
    assert response.status_code == 202, response.text
    return response.json()


def wait_for(client, batch_id: str, done, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        batch = client.get(f"/batches/{batch_id}").json()
        if done(batch):
            return batch
        assert time.monotonic() < deadline, (batch["status"], batch["counts"], batch["provider_batches"])
        time.sleep(0.1)


def results(client, batch_id: str) -> dict[str, dict]:
    lines = [json.loads(line) for line in client.get(f"/batches/{batch_id}/results").text.splitlines()]
    return {line["custom_id"]: line for line in lines}


def generations(stack, batch_id: str) -> dict[str, list[Span]]:
    """Each item's generation spans (by custom_id), in attempt order."""
    with stack.db.transaction() as session:
        rows = session.execute(
            select(Job.custom_id, Span)
            .join(Span, Span.job_id == Job.id)
            .where(Job.batch_id == batch_id, Span.type == "generation")
            .order_by(Span.start_time)
        ).all()
        session.expunge_all()
    found: dict[str, list[Span]] = {}
    for custom_id, span in rows:
        found.setdefault(custom_id, []).append(span)
    return found


def model(name: str, **directives: str) -> str:
    query = "&".join([*(f"{k}={v}" for k, v in directives.items()), f"run={uuid.uuid4().hex[:8]}"])
    return f"fake/{name}?{query}"


def test_a_provider_batch_gives_the_queue_results_at_half_the_cost(pstack, fake_provider):
    run = uuid.uuid4().hex[:8]
    chain = f"fake/nightly?run={run}"
    before = fake_provider.batches()["batches_created"]
    with pstack.client(pstack.new_key()) as client:
        queued = submit(client, chain, 20, execution="queue")
        batched = submit(client, chain, 20, completion_window="24h")  # auto: 24h and a batch API
        assert queued["execution"] == "queue" and batched["execution"] == "provider"
        queued = wait_for(client, queued["id"], lambda b: b["status"] == "completed")
        batched = wait_for(client, batched["id"], lambda b: b["status"] == "completed")
        on_queue, by_batch = results(client, queued["id"]), results(client, batched["id"])
    assert batched["counts"]["succeeded"] == 20 and batched["counts"]["failed"] == 0
    assert fake_provider.batches()["batches_created"] == before + 1
    [pbatch] = batched["provider_batches"]
    assert pbatch["state"] == "collected" and pbatch["provider_state"] == "completed" and pbatch["items"] == 20
    assert pbatch["provider_batch_id"].startswith("batch_")
    for custom_id, line in by_batch.items():
        same = on_queue[custom_id]["result"]
        assert line["status"] == "succeeded" and line["result"]["json_payload"] == same["json_payload"]
        assert line["result"]["usage"] == same["usage"]
        assert line["result"]["cost"]["generation"] == pytest.approx(same["cost"]["generation"] / 2)
    assert batched["cost"]["generation"] == pytest.approx(queued["cost"]["generation"] / 2)
    assert batched["usage"] == queued["usage"]
    spans = generations(pstack, batched["id"])
    assert len(spans) == 20 and all(len(attempts) == 1 for attempts in spans.values())
