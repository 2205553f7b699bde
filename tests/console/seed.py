"""Put something in a project through the public API for the console to show: calls, a batch."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from tests.helpers import wait_for_batch


@dataclass
class Seeded:
    job: dict[str, Any]  # the job of the call, as GET /v2/jobs/{id} gives it
    batch: dict[str, Any]  # the batch, ended


def call(client: httpx.Client, name: str, payload: Any, **extra: Any) -> dict[str, Any]:
    """A `/v2/call`, answered; returns its job."""
    response = client.post("/call", json={"name": name, "input": payload, **extra})
    response.raise_for_status()
    span_id = response.json()["span_id"]
    jobs = client.get("/jobs", params={"name": name, "limit": 100}).json()["data"]
    (job,) = [job for job in jobs if job["span_id"] == span_id]
    return client.get(f"/jobs/{job['id']}").json()


def submit_batch(client: httpx.Client, name: str, inputs: list[Any], **function: Any) -> dict[str, Any]:
    items = [{"custom_id": f"item-{i + 1}", "input": value} for i, value in enumerate(inputs)]
    body = {"function": {"name": name, "instructions": "Answer briefly.", **function}, "items": items}
    response = client.post("/batches", json=body)
    response.raise_for_status()
    return response.json()


def wait_batch(client: httpx.Client, batch_id: str, timeout: float = 60) -> dict[str, Any]:
    """The batch once it ended (polled: the API has no long-poll for batches)."""
    return wait_for_batch(client, batch_id, timeout=timeout)


def seed_minimal(client: httpx.Client) -> Seeded:
    """One tagged call and a batch of three, both ended."""
    suffix = uuid.uuid4().hex[:6]
    job = call(client, f"summarize-{suffix}", {"text": "Conveyor runs LLM calls as durable jobs."}, tags={"team": "qa"})
    batch = submit_batch(client, f"classify-{suffix}", ["red apple", "blue sky", "green grass"])
    return Seeded(job=job, batch=wait_batch(client, batch["id"]))
