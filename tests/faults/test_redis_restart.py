"""Redis restarted under load (issue 15), or its connections cut: workers with jobs in flight survive,
reconnect and keep consuming; every accepted job ends exactly once; a submission refused during the
outage ran nothing.

The two faults take different paths through the worker's broker channel (workers/broker.py): after a
restart the unacknowledged messages cannot be handed back at close, and stay in Redis until their
jobs end; after a cut connection Redis is still there, so they are handed back and delivered again
while their jobs still run, and the lease makes that second delivery a no-op."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest
import redis

from tests.faults.load import Ledger, Submitter, WaitingCalls, project_job_ids, wait_until_final
from tests.faults.processes import PrivateRedis
from tests.helpers import eventually

pytestmark = pytest.mark.faults

CALLS = 100
WAITING = 5
LATENCY_MS = 1500
OUTAGE_SECONDS = 1.0
BOUND_SECONDS = 45  # from the restart until every accepted job has ended


def restart(server: PrivateRedis) -> None:
    server.restart(down_seconds=OUTAGE_SECONDS)


def cut_connections(server: PrivateRedis) -> None:
    client = redis.Redis.from_url(server.url)
    client.client_kill_filter(_type="normal", skipme=True)
    client.client_kill_filter(_type="pubsub")


@pytest.mark.parametrize("fault", [restart, cut_connections], ids=["restart", "connections-cut"])
def test_redis_fault_under_load(fault, fault_stack, private_redis, fake_provider):
    stack = fault_stack
    (worker,) = stack.workers
    project_id, key = stack.new_project()
    model = f"fake/redis-restart?latency_ms={LATENCY_MS}&run={uuid.uuid4().hex[:8]}"
    submitter = Submitter(stack.api_url, key, model)

    _, waiting_key = stack.new_project()
    waiting = WaitingCalls(stack.api_url, waiting_key, model)
    waiting.start(WAITING)  # callers waiting for their results across the fault
    first = submitter.start(range(CALLS // 2))
    in_flight = WAITING + CALLS // 4  # jobs in flight, acknowledged late
    eventually(lambda: fake_provider.requests_for(model) >= in_flight, 30, what="calls in flight at the worker")
    second = submitter.start(range(CALLS // 2, CALLS))  # the rest keeps coming through the outage
    fault(private_redis)
    restarted = time.monotonic()
    first.join()
    second.join()

    assert submitter.unexpected == []
    assert sorted(submitter.accepted) == list(range(CALLS))
    accepted = sorted(submitter.accepted.values())
    assert sorted(project_job_ids(stack.db, project_id)) == accepted  # a refused submission left no job
    wait_until_final(stack.db, accepted, within=BOUND_SECONDS - (time.monotonic() - restarted))
    ended = time.monotonic() - restarted
    print(f"redis {fault.__name__}: refused {dict(submitter.refusals)}; all ended {ended:.1f} s after")

    answers = waiting.join()
    assert [getattr(answer, "status_code", answer) for answer in answers] == [200] * WAITING
    assert all(answer.json()["message"] and answer.json()["cost"]["generation"] > 0 for answer in answers)

    assert worker.poll() is None, "the worker exited at the Redis restart"
    ledger = Ledger.read(stack.db, accepted)
    assert ledger.problems() == []
    assert fake_provider.requests_for(model) == CALLS + WAITING  # no job was run twice

    # Still consuming: a call sent now is run by the same worker.
    with httpx.Client(base_url=stack.api_url + "/v2", headers={"Authorization": f"Bearer {key}"}) as client:
        response = client.post("/call", json={"name": "after", "input": "x", "model": model}, timeout=30)
    assert response.status_code == 200, response.text
    assert fake_provider.requests_for(model) == CALLS + WAITING + 1
