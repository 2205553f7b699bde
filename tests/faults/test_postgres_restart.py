"""Postgres restarted under load: API and workers reconnect; every accepted job ends exactly once (one
result, one billed attempt), a submission refused during the outage left no job, workers keep consuming.

A worker holds what it finished while the database was away and writes it once it is back (its lease
outlasts the outage; workers/outage.py), so no provider call is repeated. A `/v2/call` waiting across
the outage answers 503 naming its accepted job (body `job_id`, `Location`, `Retry-After`): the caller
polls the job and gets the result, instead of sending the call again. A streamed call open across the
outage (re-reading its job while the database is away) gets its whole answer."""

from __future__ import annotations

import json
import threading
import time
import uuid

import httpx
import pytest

from tests.faults.load import Ledger, Submitter, WaitingCalls, project_job_ids, wait_until_final
from tests.helpers import eventually

pytestmark = pytest.mark.faults

CALLS = 100
WAITING = 5
LATENCY_MS = 2000  # longer than a third of the lease (pg_fault_stack): renewals fall in the outage
OUTAGE_SECONDS = 1.0
BOUND_SECONDS = 45  # from the restart until every accepted job has ended


class StreamedCall(threading.Thread):
    """`POST /v2/call/stream`, read to its end: the events' data objects (or the error that ended it)."""

    def __init__(self, api_url: str, key: str, model: str) -> None:
        super().__init__(daemon=True)
        self.api_url, self.key, self.model = api_url, key, model
        self.events: list[dict] = []
        self.error: Exception | None = None

    def run(self) -> None:
        body = {"name": "streamed", "input": "across the outage", "model": self.model}
        headers = {"Authorization": f"Bearer {self.key}"}
        try:
            with httpx.stream("POST", self.api_url + "/v2/call/stream", json=body, headers=headers, timeout=120) as r:
                for line in r.iter_lines():
                    if line.startswith("data: "):
                        self.events.append(json.loads(line[6:]))
        except Exception as exc:  # noqa: BLE001 - recorded, and fails the test
            self.error = exc


def test_postgres_restart_under_load(pg_fault_stack, private_postgres, fake_provider):
    stack = pg_fault_stack
    (worker,) = stack.workers
    project_id, key = stack.new_project()
    model = f"fake/pg-restart?latency_ms={LATENCY_MS}&run={uuid.uuid4().hex[:8]}"
    submitter = Submitter(stack.api_url, key, model)
    waiting_project, waiting_key = stack.new_project()
    waiting = WaitingCalls(stack.api_url, waiting_key, model)

    first = submitter.start(range(CALLS // 2))
    eventually(lambda: fake_provider.requests_for(model) >= CALLS // 4, what="calls in flight at the worker")
    waiting.start(WAITING)  # accepted before the outage, queued behind the first half: they wait across it
    stream_project, stream_key = stack.new_project()
    streamed = StreamedCall(stack.api_url, stream_key, model)
    streamed.start()
    eventually(lambda: len(project_job_ids(stack.db, waiting_project)) == WAITING, what="the waiting calls accepted")
    eventually(lambda: len(project_job_ids(stack.db, stream_project)) == 1, what="the streamed call accepted")
    second = submitter.start(range(CALLS // 2, CALLS))
    private_postgres.restart(down_seconds=OUTAGE_SECONDS)
    restarted = time.monotonic()
    first.join()
    second.join()
    # The test's own pooled connections died with the restart, and one used within the pool's idle-ping
    # window fails its next statement once (as the API's and workers' do, which they answer or retry):
    # the test reads with fresh ones.
    stack.db.dispose()

    assert submitter.unexpected == []
    assert sorted(submitter.accepted) == list(range(CALLS))
    accepted = sorted(submitter.accepted.values())
    assert sorted(project_job_ids(stack.db, project_id)) == accepted

    # Each waiting call was told which accepted job to poll.
    answers = waiting.join()
    assert [getattr(answer, "status_code", answer) for answer in answers] == [503] * WAITING
    named = [answer.json()["job_id"] for answer in answers]
    assert sorted(named) == sorted(project_job_ids(stack.db, waiting_project))
    for answer, job_id in zip(answers, named, strict=True):
        assert answer.headers["location"] == f"/v2/jobs/{job_id}" and answer.headers["retry-after"]
        assert answer.json()["detail"]["job_id"] == job_id
    with httpx.Client(base_url=stack.api_url + "/v2", headers={"Authorization": f"Bearer {waiting_key}"}) as client:
        polled = [client.get(f"/jobs/{job_id}", params={"wait": 30}, timeout=40).json() for job_id in named]
    assert [job["status"] for job in polled] == ["succeeded"] * WAITING

    wait_until_final(stack.db, accepted, within=BOUND_SECONDS - (time.monotonic() - restarted))
    print(f"postgres restart: refused {dict(submitter.refusals)}; all ended {time.monotonic() - restarted:.1f} s after")
    streamed.join(timeout=60)
    assert streamed.error is None and streamed.events[0].get("span_id"), (streamed.error, streamed.events[:3])
    assert [e for e in streamed.events if e.get("chunk_type") == "error"] == []
    assert "".join(e["delta"] for e in streamed.events if e.get("chunk_type") == "text")
    assert fake_provider.requests_for(model) == CALLS + WAITING + 1  # results finished in the outage were kept

    assert worker.poll() is None
    ledger = Ledger.read(stack.db, accepted + named + project_job_ids(stack.db, stream_project))
    assert ledger.problems() == []

    with httpx.Client(base_url=stack.api_url + "/v2", headers={"Authorization": f"Bearer {key}"}) as client:
        response = client.post("/call", json={"name": "after", "input": "x", "model": model}, timeout=30)
    assert response.status_code == 200, response.text
