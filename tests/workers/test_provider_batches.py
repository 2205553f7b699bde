"""Batches through the provider's batch API (`execution: provider`), with a real worker and the fake
provider's OpenAI Batch API: the same results as on the queue at half the cost; answers out of schema
re-asked, errors falling back, expired lines run afresh, cancel, and a batch split by a lowered limit."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest
from sqlalchemy import select
from standardwebhooks.webhooks import Webhook

from app.services.webhooks import generate_secret
from app.store.tables import Job, Span
from tests.helpers import Receiver, eventually, submit_batch, wait_for_batch
from tests.stack import start_stack

SCHEMA = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}


@pytest.fixture(scope="module")
def pstack(fake_provider):
    stack = start_stack(
        fake_provider.url,
        CONVEYOR_PROVIDER_BATCH_POLL_SECONDS="0.2",
        CONVEYOR_PROVIDER_BATCH_MAX_REQUESTS="300",
        CONVEYOR_ALLOW_PRIVATE_WEBHOOKS="true",
    )
    yield stack
    stack.stop()


def submit(client, models, count: int, **extra) -> dict:
    return submit_batch(client, {"name": "overnight", "model": models, "output_schema": SCHEMA}, count, **extra)


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
    receiver = Receiver()
    with pstack.client(pstack.new_key()) as client:
        queued = submit(client, chain, 20, execution="queue")
        webhook = {"url": receiver.url, "secret": generate_secret()}
        batched = submit(client, chain, 20, completion_window="24h", webhook=webhook)  # auto: 24h, a batch API
        assert queued["execution"] == "queue" and batched["execution"] == "provider"
        queued = wait_for_batch(client, queued["id"], lambda b: b["status"] == "completed")
        batched = wait_for_batch(client, batched["id"], lambda b: b["status"] == "completed")
        on_queue, by_batch = results(client, queued["id"]), results(client, batched["id"])
    assert batched["counts"]["succeeded"] == 20 and batched["counts"]["failed"] == 0 and batched["started_at"]
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
    eventually(lambda: receiver.received, 10, what="the batch webhook")
    headers, body = receiver.received[0]
    event = Webhook(webhook["secret"]).verify(body, headers)
    assert event["type"] == "batch.completed" and event["data"]["execution"] == "provider"
    assert event["data"]["counts"]["succeeded"] == 20


def test_answers_out_of_schema_are_re_asked_and_errors_fall_back(pstack, fake_provider):
    """Out of schema: the re-ask goes out synchronously (ordinary price) after the half-price answer.
    Errored lines move on to the next model of the chain; expired lines run afresh on the first."""
    with pstack.client(pstack.new_key()) as client:
        violating = submit(client, model("reask", schema_violation="first"), 5, execution="provider")
        failing = submit(client, [model("down", fail="500"), model("backup")], 5, execution="provider")
        expiring = submit(client, model("late", batch_expire="1"), 5, execution="provider")
        ended = [
            wait_for_batch(client, b["id"], lambda b: b["status"] == "completed")
            for b in (violating, failing, expiring)
        ]
    assert all(b["counts"]["succeeded"] == 5 for b in ended)
    reasked, fell_back, expired = (generations(pstack, b["id"]) for b in ended)
    for attempts in reasked.values():
        first, second = attempts
        assert first.error and "output schema" in first.error and second.error is None
        # The batch answer at half price, the re-ask at the full price of the same model.
        full = (first.input_tokens * 0.5 + first.output_tokens * 1.5) / 1e6
        assert first.cost_generation == pytest.approx(full / 2)
        assert second.cost_generation == pytest.approx((second.input_tokens * 0.5 + second.output_tokens * 1.5) / 1e6)
    for attempts in fell_back.values():
        down, backup = attempts
        assert "500" in down.error and down.cost_generation == 0 and down.model.startswith("fake/down")
        assert backup.error is None and backup.model.startswith("fake/backup") and backup.cost_generation > 0
    for attempts in expired.values():
        [attempt] = attempts  # never answered by the batch: one ordinary attempt, at the ordinary price
        assert attempt.cost_generation == pytest.approx(
            (attempt.input_tokens * 0.5 + attempt.output_tokens * 1.5) / 1e6
        )
    assert ended[2]["provider_batches"][0]["provider_state"] == "expired"


def test_a_batch_too_large_for_one_provider_batch_is_split(pstack, fake_provider):
    with pstack.client(pstack.new_key()) as client:
        batch = submit(client, model("split"), 1000, execution="provider")
        batch = wait_for_batch(client, batch["id"], lambda b: b["status"] == "completed", timeout=120)
        lines = results(client, batch["id"])
    assert batch["counts"]["succeeded"] == 1000
    assert sorted(p["items"] for p in batch["provider_batches"]) == [100, 300, 300, 300]  # the limit is 300
    assert all(p["state"] == "collected" for p in batch["provider_batches"])
    assert len({p["provider_batch_id"] for p in batch["provider_batches"]}) == 4
    assert len(lines) == 1000 and all(line["status"] == "succeeded" for line in lines.values())


def test_cancel_cancels_the_provider_batch_and_bills_nothing(pstack, fake_provider):
    with pstack.client(pstack.new_key()) as client:
        batch = submit(client, model("slow", batch_ms="60000"), 10, execution="provider")
        batch = wait_for_batch(
            client, batch["id"], lambda b: b["provider_batches"] and b["provider_batches"][0]["provider_batch_id"]
        )
        external = batch["provider_batches"][0]["provider_batch_id"]
        waiting = results(client, batch["id"])  # results stream while it runs: every item still queued
        assert len(waiting) == 10 and {line["status"] for line in waiting.values()} == {"queued"}
        cancelled = client.post(f"/batches/{batch['id']}/cancel").json()
        assert cancelled["status"] == "cancelled" and cancelled["counts"]["cancelled"] == 10  # at once
        assert cancelled["cost"]["total"] == 0
        batch = wait_for_batch(client, batch["id"], lambda b: b["provider_batches"][0]["state"] == "cancelled")
    assert batch["provider_batches"][0]["provider_state"] == "cancelled"
    remote = httpx.get(f"{fake_provider.url}/v1/batches/{external}").json()
    assert remote["status"] == "cancelled"
    assert generations(pstack, batch["id"]) == {}


@pytest.mark.parametrize(
    ("extra", "chosen"),
    [
        ({}, "queue"),  # auto, no window
        ({"completion_window": "12h"}, "queue"),  # auto, too short a window for a provider batch
        ({"completion_window": "24h"}, "provider"),
        ({"completion_window": "2d", "execution": "auto"}, "provider"),
        ({"completion_window": "24h", "execution": "queue"}, "queue"),
        ({"execution": "provider"}, "provider"),
    ],
)
def test_the_execution_is_chosen_from_the_window_and_shown(pstack, extra, chosen):
    with pstack.client(pstack.new_key()) as client:
        batch = submit(client, model("route"), 1, **extra)
        assert batch["execution"] == chosen
        ended = wait_for_batch(client, batch["id"], lambda b: b["status"] == "completed")
    assert ended["execution"] == chosen and ended["counts"]["succeeded"] == 1
    assert len(ended["provider_batches"]) == (1 if chosen == "provider" else 0)


def test_a_bad_execution_is_a_400_naming_the_field(pstack):
    with pstack.client(pstack.new_key()) as client:
        unknown = client.post(
            "/batches",
            json={
                "function": {"name": "x", "model": "fake/a"},
                "items": [{"custom_id": "a", "input": 1}],
                "execution": "fast",
            },
        )
        assert unknown.status_code == 400 and "execution" in json.dumps(unknown.json()["detail"])
        # A custom model (an OpenAI-compatible server of the user's) has no batch API here.
        custom = {"name": f"mine-{uuid.uuid4().hex[:6]}", "identifier": "llama", "extra": {"api_base": "http://x/v1"}}
        created = client.post("/models/custom", json=custom)
        assert created.status_code == 200, created.text
        refused = client.post(
            "/batches",
            json={
                "function": {"name": "x", "model": f"custom/{created.json()['id']}"},
                "items": [{"custom_id": "a", "input": 1}],
                "execution": "provider",
            },
        )
        assert refused.status_code == 400 and refused.json()["detail"].startswith("execution:")
        assert "no provider batch API" in refused.json()["message"]
        assert client.get("/batches").json()["data"] == []  # nothing was kept


def test_anthropic_message_batches_give_the_queue_results_at_half_the_cost(pstack, fake_provider):
    chain = f"fake-anthropic/claude?run={uuid.uuid4().hex[:8]}"
    before = fake_provider.batches()["message_batches_created"]
    with pstack.client(pstack.new_key()) as client:
        queued = submit(client, chain, 10, execution="queue")
        batched = submit(client, chain, 10, execution="provider")
        falling = submit(
            client, [model("down", fail="529").replace("fake/", "fake-anthropic/"), chain], 4, execution="provider"
        )
        queued, batched, falling = (
            wait_for_batch(client, b["id"], lambda b: b["status"] == "completed") for b in (queued, batched, falling)
        )
        on_queue, by_batch = results(client, queued["id"]), results(client, batched["id"])
    assert fake_provider.batches()["message_batches_created"] == before + 2
    assert batched["provider_batches"][0]["provider_batch_id"].startswith("msgbatch_")
    assert batched["provider_batches"][0]["provider_state"] == "ended"
    for custom_id, line in by_batch.items():
        same = on_queue[custom_id]["result"]
        assert line["result"]["json_payload"] == same["json_payload"] and line["result"]["usage"] == same["usage"]
        assert line["result"]["cost"]["generation"] == pytest.approx(same["cost"]["generation"] / 2)
    assert falling["counts"]["succeeded"] == 4
    for attempts in generations(pstack, falling["id"]).values():
        down, backup = attempts
        assert "529" in down.error and down.cost_generation == 0 and backup.error is None
