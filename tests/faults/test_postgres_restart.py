"""Postgres restarted under load: API and workers reconnect; every accepted job ends exactly once (one
result, one billed attempt), a submission refused during the outage left no job, workers keep consuming.

Work finished while the database was away cannot be written; its job is run again after its lease
expires (issue 15, item 4), so the provider may be called more than once per job: never billed twice."""

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


def test_postgres_restart_under_load(pg_fault_stack, private_postgres, fake_provider):
    stack = pg_fault_stack
    (worker,) = stack.workers
    project_id, key = stack.new_project()
    model = f"fake/pg-restart?latency_ms={LATENCY_MS}&run={uuid.uuid4().hex[:8]}"
    submitter = Submitter(stack.api_url, key, model)

    first = submitter.start(range(CALLS // 2))
    deadline = time.monotonic() + 30
    while fake_provider.requests_for(model) < CALLS // 4:
        assert time.monotonic() < deadline, "the worker never had calls in flight"
        time.sleep(0.05)
    second = submitter.start(range(CALLS // 2, CALLS))
    private_postgres.restart(down_seconds=OUTAGE_SECONDS)
    restarted = time.monotonic()
    first.join()
    second.join()

    assert submitter.unexpected == []
    assert sorted(submitter.accepted) == list(range(CALLS))
    accepted = sorted(submitter.accepted.values())
    assert sorted(project_job_ids(stack.db, project_id)) == accepted
    wait_until_final(stack.db, accepted, within=BOUND_SECONDS - (time.monotonic() - restarted))
    repeats = fake_provider.requests_for(model) - CALLS
    print(f"postgres restart: refused {dict(submitter.refusals)}; all ended {time.monotonic() - restarted:.1f} s after")
    print(f"postgres restart: {repeats} provider calls repeated")

    assert worker.poll() is None
    ledger = Ledger.read(stack.db, accepted)
    assert ledger.problems() == []

    with httpx.Client(base_url=stack.api_url + "/v2", headers={"Authorization": f"Bearer {key}"}) as client:
        response = client.post("/call", json={"name": "after", "input": "x", "model": model}, timeout=30)
    assert response.status_code == 200, response.text
