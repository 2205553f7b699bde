"""Redis restarted under load (issue 15): workers with jobs in flight survive, reconnect and keep
consuming; every accepted job ends exactly once; a submission refused during the outage ran nothing."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest

from tests.faults.load import Ledger, Submitter, project_job_ids, wait_until_final

pytestmark = pytest.mark.faults

CALLS = 100
LATENCY_MS = 1500
OUTAGE_SECONDS = 1.0
BOUND_SECONDS = 45  # from the restart until every accepted job has ended


def test_redis_restart_under_load(fault_stack, private_redis, fake_provider):
    stack = fault_stack
    worker = stack.start_worker()
    project_id, key = stack.new_project()
    model = f"fake/redis-restart?latency_ms={LATENCY_MS}&run={uuid.uuid4().hex[:8]}"
    submitter = Submitter(stack.api_url, key, model)

    first = submitter.start(range(CALLS // 2))
    deadline = time.monotonic() + 30
    while fake_provider.requests_for(model) < CALLS // 4:  # jobs in flight, acknowledged late
        assert time.monotonic() < deadline, "the worker never had calls in flight"
        time.sleep(0.05)
    second = submitter.start(range(CALLS // 2, CALLS))  # the rest keeps coming through the outage
    private_redis.restart(down_seconds=OUTAGE_SECONDS)
    restarted = time.monotonic()
    first.join()
    second.join()

    assert submitter.unexpected == []
    assert sorted(submitter.accepted) == list(range(CALLS))
    accepted = sorted(submitter.accepted.values())
    assert sorted(project_job_ids(stack.db, project_id)) == accepted  # a refused submission left no job
    wait_until_final(stack.db, accepted, within=BOUND_SECONDS - (time.monotonic() - restarted))
    print(f"redis restart: refused {dict(submitter.refusals)}; all ended {time.monotonic() - restarted:.1f} s after")

    assert worker.poll() is None, "the worker exited at the Redis restart"
    ledger = Ledger.read(stack.db, accepted)
    assert ledger.problems() == []
    assert fake_provider.requests_for(model) == CALLS  # no job was run twice

    # Still consuming: a call sent now is run by the same worker.
    with httpx.Client(base_url=stack.api_url + "/v2", headers={"Authorization": f"Bearer {key}"}) as client:
        response = client.post("/call", json={"name": "after", "input": "x", "model": model}, timeout=30)
    assert response.status_code == 200, response.text
    assert fake_provider.requests_for(model) == CALLS + 1
