"""A worker SIGKILLed under load: another worker takes its jobs over once their leases expire; every
accepted job ends exactly once (one result, one billed attempt), and the survivor keeps consuming."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest

from tests.faults.load import Ledger, Submitter, project_job_ids, wait_until_final
from tests.helpers import eventually

pytestmark = [pytest.mark.faults, pytest.mark.workers(2)]

CALLS = 100
LATENCY_MS = 2000
BOUND_SECONDS = 30  # from the kill until every accepted job has ended (lease 2 s, sweep every 0.5 s)


def test_worker_sigkill_under_load(fault_stack, fake_provider):
    stack = fault_stack
    doomed, survivor = stack.workers
    project_id, key = stack.new_project()
    model = f"fake/worker-kill?latency_ms={LATENCY_MS}&run={uuid.uuid4().hex[:8]}"
    submitter = Submitter(stack.api_url, key, model)

    submitter.submit_all(range(CALLS // 2))
    # All of them running, most on the doomed worker.
    eventually(lambda: fake_provider.requests_for(model) >= CALLS // 2, 30, what="every call in flight")
    stack.kill(doomed)
    killed = time.monotonic()
    submitter.submit_all(range(CALLS // 2, CALLS))  # the rest arrives after the kill

    assert submitter.unexpected == []
    accepted = sorted(submitter.accepted.values())
    assert len(accepted) == CALLS
    assert sorted(project_job_ids(stack.db, project_id)) == accepted
    wait_until_final(stack.db, accepted, within=BOUND_SECONDS - (time.monotonic() - killed))
    print(f"worker SIGKILL: all ended {time.monotonic() - killed:.1f} s after the kill")

    ledger = Ledger.read(stack.db, accepted)
    assert ledger.problems() == []
    # Each claim called the provider once: the killed worker's calls were abandoned, and each of its
    # jobs was claimed (and called) once more by the survivor.
    attempts = [job.delivery_attempts for job in ledger.jobs]
    assert fake_provider.requests_for(model) == sum(attempts)
    assert attempts.count(2) > 0 and set(attempts) == {1, 2}, sorted(attempts)

    assert survivor.poll() is None
    with httpx.Client(base_url=stack.api_url + "/v2", headers={"Authorization": f"Bearer {key}"}) as client:
        response = client.post("/call", json={"name": "after", "input": "x", "model": model}, timeout=30)
    assert response.status_code == 200, response.text
