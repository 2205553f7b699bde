"""A worker killed mid-call: another worker completes the job exactly once (one result, one bill)."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from sqlalchemy import select

from app.store.tables import Job, JobStatus, Span
from tests.stack import start_stack


@pytest.fixture
def crash_stack(fake_provider):
    stack = start_stack(fake_provider.url, workers=0, CONVEYOR_JOB_LEASE_SECONDS="2", CONVEYOR_SWEEP_INTERVAL="0.5")
    yield stack
    stack.stop()


def test_killed_worker_job_completes_once_elsewhere(crash_stack, fake_provider):
    stack = crash_stack
    key = stack.new_key()
    doomed = stack.start_worker()
    model = f"fake/slow?latency_ms=3000&run={uuid.uuid4().hex[:8]}"
    outcome: dict = {}

    def call() -> None:
        with stack.client(key, timeout=60) as client:
            outcome["response"] = client.post(
                "/call",
                json={
                    "name": "crash",
                    "input": "x",
                    "model": model,
                    "output_schema": {
                        "type": "object",
                        "properties": {"ok": {"type": "boolean"}},
                        "required": ["ok"],
                    },
                },
            )

    caller = threading.Thread(target=call)
    caller.start()
    deadline = time.monotonic() + 15
    while fake_provider.requests_for(model) == 0:  # the doomed worker's request reached the provider
        assert time.monotonic() < deadline, "the first worker never called the provider"
        time.sleep(0.05)
    stack.kill_worker(doomed)
    stack.start_worker()
    caller.join(timeout=60)

    response = outcome["response"]
    assert response.status_code == 200, response.text
    assert fake_provider.requests_for(model) == 2  # the abandoned request, then the one that finished
    with stack.db.transaction() as session:
        job = session.scalars(select(Job).where(Job.span_id == response.json()["span_id"])).one()
        spans = session.scalars(select(Span).where(Span.job_id == job.id)).all()
    assert job.status == JobStatus.succeeded and job.delivery_attempts == 2
    assert job.result == response.json()
    assert sorted(s.type for s in spans) == ["call", "generation"]  # one result, one billed attempt
    billed = [s for s in spans if s.type == "generation"]
    assert billed[0].cost_generation == response.json()["cost"]["generation"] > 0
