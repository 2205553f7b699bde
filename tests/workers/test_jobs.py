"""Jobs as a delivery mode against a real stack: submit, poll, long-poll, list, cancel, `/v2/call` 202s."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from sqlalchemy import select

from app.store.tables import Job, JobStatus, Span
from tests.fakeprovider import FakeProviderServer
from tests.helpers import eventually, jobs_held_by_workers, unique, wait_for_job
from tests.stack import start_stack

SCHEMA = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}


@pytest.fixture(scope="module")
def fake():
    """A fake provider of this module's own, so its in-flight count is this module's requests only."""
    with FakeProviderServer() as server:
        yield server


@pytest.fixture(scope="module")
def stack(fake):
    running = start_stack(fake.url, CONVEYOR_CALL_WAIT_SECONDS="1", CONVEYOR_JOB_MAX_WAIT_SECONDS="3")
    yield running
    running.stop()


def message_unacked(stack, job_id: str) -> bool:
    """Whether a worker holds the job's message as delivered and not yet acknowledged."""
    return job_id in jobs_held_by_workers(stack.settings.redis_url, len(stack.workers))


def spans_of(stack, job_id: str) -> list[Span]:
    with stack.db.transaction() as session:
        return list(session.scalars(select(Span).where(Span.job_id == job_id)))


@pytest.fixture
def idle_stack(fake):
    """No worker yet: submitted jobs stay queued."""
    running = start_stack(fake.url, workers=0)
    yield running
    running.stop()


def test_cancel_a_queued_job_at_once_and_a_running_one_within_a_second(idle_stack, fake):
    model = unique("fake/a")
    with idle_stack.client(idle_stack.new_key()) as client:
        job = client.post("/jobs", json={"name": "queued", "input": "x", "model": model}).json()
        assert client.get(f"/jobs/{job['id']}").json()["status"] == "queued"
        cancelled = client.post(f"/jobs/{job['id']}/cancel").json()
        assert cancelled["status"] == "cancelled" and cancelled["finished_at"]
        # One worker thread: it can only run the next job once it has let go of the cancelled one.
        idle_stack.start_worker(concurrency=1)  # the queued message is still there: it must be left alone
        # Sent after it on the same queue: once this one has run, the worker has handled the cancelled one.
        later = client.post("/jobs", json={"name": "later", "input": "x", "model": unique("fake/a")}).json()
        assert wait_for_job(client, later["id"])["status"] == "succeeded"
        assert client.get(f"/jobs/{job['id']}").json()["status"] == "cancelled"
        assert fake.requests_for(model) == 0
        assert [(s.type, s.cost_generation) for s in spans_of(idle_stack, job["id"])] == [("call", 0.0)]

        slow = unique("fake/a?latency_ms=10000")  # it ends while later tests run
        running = client.post("/jobs", json={"name": "running", "input": "x", "model": slow}).json()
        eventually(lambda: fake.requests_for(slow), 10, what="the slow call at the provider")
        assert client.post(f"/jobs/{running['id']}/cancel").json()["status"] == "cancelled"
        start = time.monotonic()
        after = client.post("/jobs", json={"name": "next", "input": "x", "model": unique("fake/a")}).json()
        done = client.get(f"/jobs/{after['id']}", params={"wait": 10}).json()
        assert done["status"] == "succeeded"
        assert time.monotonic() - start < 3.0  # the worker let go of the 10 s provider call at once


def test_a_job_is_polled_to_completion(client):
    response = client.post(
        "/jobs", json={"name": "poll", "input": "x", "model": "fake/a?latency_ms=200", "metadata": {"batch": 7}}
    )
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["status"] == "queued" and job["object"] == "job" and job["metadata"] == {"batch": 7}
    assert response.headers["location"] == job["links"]["self"] == f"/v2/jobs/{job['id']}"
    job = wait_for_job(client, job["id"], timeout=10)
    assert job["status"] == "succeeded" and job["attempts"] == 1 and job["error"] is None
    assert job["started_at"] and job["finished_at"] >= job["started_at"] >= job["created_at"]
    assert job["result"]["span_id"] == job["span_id"] and job["result"]["message"].startswith("[simulated]")
    assert job["result"]["usage"]["total_tokens"] > 0


def test_a_job_is_long_polled(client):
    job = client.post("/jobs", json={"name": "long", "input": "x", "model": "fake/a?latency_ms=1200"}).json()
    start = time.monotonic()
    done = client.get(f"/jobs/{job['id']}", params={"wait": 10}).json()
    waited = time.monotonic() - start
    assert done["status"] == "succeeded" and done["result"]["message"]
    assert 0.8 < waited < 6.0  # answered when the job ended, not at the end of the 10 s wait


def test_long_polling_is_bounded(client):
    job = client.post("/jobs", json={"name": "slow", "input": "x", "model": "fake/a?latency_ms=6000"}).json()
    start = time.monotonic()
    current = client.get(f"/jobs/{job['id']}", params={"wait": 600}).json()
    assert current["status"] in ("queued", "running")
    assert 2.5 < time.monotonic() - start < 5  # CONVEYOR_JOB_MAX_WAIT_SECONDS=3
    assert client.get(f"/jobs/{job['id']}", params={"wait": -1}).status_code == 400


def test_call_answers_202_with_the_job_when_asked_or_when_the_wait_runs_out(client):
    asked = client.post("/call", json={"name": "async", "input": "x"}, headers={"Prefer": "respond-async"})
    assert asked.status_code == 202 and asked.headers["preference-applied"] == "respond-async"
    assert asked.headers["location"] == f"/v2/jobs/{asked.json()['id']}"
    done = client.get(asked.headers["location"].removeprefix("/v2"), params={"wait": 3}).json()
    assert done["status"] == "succeeded" and done["result"]["message"]

    slow = client.post("/call", json={"name": "slow", "input": "x", "model": "fake/a?latency_ms=2500"})
    assert slow.status_code == 202, slow.text  # CONVEYOR_CALL_WAIT_SECONDS=1; it keeps running
    assert slow.json()["status"] in ("queued", "running")
    later = client.get(f"/jobs/{slow.json()['id']}", params={"wait": 3}).json()
    assert later["status"] == "succeeded" and later["result"]["span_id"] == slow.json()["span_id"]

    quick = client.post("/call", json={"name": "quick", "input": "x"})
    assert quick.status_code == 200 and quick.json()["message"]


def test_listing_filters_and_pages(client):
    ids = {}
    for name, tag in [("list_a", "red"), ("list_a", "blue"), ("list_b", "red")]:
        body = {"name": name, "input": "x", "tags": {"colour": tag}}
        ids.setdefault(name, []).append(client.post("/jobs", json=body).json()["id"])
    for job_id in [i for group in ids.values() for i in group]:
        client.get(f"/jobs/{job_id}", params={"wait": 3})

    everything = client.get("/jobs").json()
    assert everything["meta"]["total_count"] == 3 and len(everything["data"]) == 3
    assert [j["id"] for j in everything["data"]] == [*reversed(ids["list_b"]), *reversed(ids["list_a"])]
    named = client.get("/jobs", params={"name": "list_a"}).json()
    assert {j["id"] for j in named["data"]} == set(ids["list_a"])
    red = client.get("/jobs", params=[("tag", "colour:red"), ("status", "succeeded")]).json()
    assert {j["id"] for j in red["data"]} == {ids["list_a"][0], ids["list_b"][0]}
    page = client.get("/jobs", params={"limit": 1, "offset": 1}).json()
    assert page["meta"]["total_count"] == 3 and [j["id"] for j in page["data"]] == [ids["list_a"][1]]
    first = everything["data"][-1]["created_at"]
    after = client.get("/jobs", params={"created_after": first, "created_before": "2999-01-01T00:00:00Z"}).json()
    assert after["meta"]["total_count"] == 3
    assert client.get("/jobs", params={"status": "queued"}).json()["meta"]["total_count"] == 0
    assert client.get("/jobs", params={"status": "done"}).status_code == 400
    assert client.get("/jobs", params={"limit": 0}).status_code == 400


def test_a_function_runs_as_a_job(client):
    function = client.post(
        "/functions", json={"name": f"fn_{uuid.uuid4().hex[:6]}", "instructions": "Judge", "output_schema": SCHEMA}
    )
    assert function.status_code == 201, function.text
    function = function.json()
    job = client.post("/jobs", json={"function_id": function["id"], "input": "x"}).json()
    done = client.get(f"/jobs/{job['id']}", params={"wait": 3}).json()
    assert done["status"] == "succeeded" and done["function_id"] == function["id"]
    assert isinstance(done["result"]["json_payload"]["ok"], bool)
    pinned = client.post("/jobs", json={"function_id": function["id"], "revision_id": function["revision_id"]})
    assert pinned.status_code == 202 and pinned.json()["revision_id"] == function["revision_id"]

    mixed = client.post("/jobs", json={"function_id": function["id"], "instructions": "other"})
    assert mixed.status_code == 400 and mixed.json()["detail"].startswith("instructions:")
    assert client.post("/jobs", json={"input": "x"}).json()["detail"].startswith("name:")
    assert client.post("/jobs", json={"name": "x", "revision_id": "r"}).json()["detail"].startswith("revision_id:")
    missing = client.post("/jobs", json={"function_id": str(uuid.uuid4()), "input": "x"})
    assert missing.status_code == 404


def test_cancel_a_running_call_abandons_it_and_bills_nothing(stack, client, fake):
    model = unique("fake/a?latency_ms=2000")
    job = client.post("/jobs", json={"name": "cancel_me", "input": "x", "model": model}).json()
    eventually(lambda: fake.requests_for(model), 10, what="the call at the provider")
    assert message_unacked(stack, job["id"])  # acknowledged late: once the worker is done with the job

    cancelled = client.post(f"/jobs/{job['id']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["error"]["type"] == "JobCancelled"
    assert client.post(f"/jobs/{job['id']}/cancel").json()["status"] == "cancelled"  # idempotent

    # The worker is done with the job once its message is acknowledged: abandoned at once, or (were the
    # cancel not heard) after the provider's answer at 2 s and its write. It must not have written anything.
    eventually(lambda: not message_unacked(stack, job["id"]), 10, what="the job's message acknowledged")
    with stack.db.transaction() as session:
        row = session.get(Job, job["id"])
    assert row.status == JobStatus.cancelled and row.result is None
    spans = spans_of(stack, job["id"])
    assert [(s.type, s.cost_generation, s.total_tokens) for s in spans] == [("call", 0.0, 0)]
    assert spans[0].error.startswith("JobCancelled")
    assert fake.requests_for(model) == 1


def test_cancel_a_running_stream_ends_it_with_an_error_chunk(client):
    body = {"name": "cancel_stream", "input": "a fairly long input " * 6, "model": unique("fake/a?latency_ms=3000")}
    with client.stream("POST", "/call/stream", json=body) as response:
        lines = (line for line in response.iter_lines() if line.startswith("data: "))
        span_id = json.loads(next(lines)[6:])["span_id"]
        assert json.loads(next(lines)[6:])["chunk_type"] == "text"
        job_id = next(j["id"] for j in client.get("/jobs").json()["data"] if j["span_id"] == span_id)
        cancelled_at = time.monotonic()
        assert client.post(f"/jobs/{job_id}/cancel").json()["status"] == "cancelled"
        rest = [json.loads(line[6:]) for line in lines]
    assert time.monotonic() - cancelled_at < 1.0  # the stream ends as soon as the job is cancelled
    assert rest[-1] == {"chunk_type": "error", "error_type": "JobCancelled", "error_message": "the job was cancelled"}


def test_cancel_conflicts_and_isolation(stack, client):
    job = client.post("/jobs", json={"name": "done", "input": "x"}).json()
    client.get(f"/jobs/{job['id']}", params={"wait": 3})
    finished = client.post(f"/jobs/{job['id']}/cancel")
    assert finished.status_code == 409 and finished.json()["type"] == "ConflictError"

    with stack.client(stack.new_key()) as other:
        assert other.get(f"/jobs/{job['id']}").status_code == 404
        assert other.post(f"/jobs/{job['id']}/cancel").status_code == 404
        assert other.get(f"/jobs/{job['id']}/deliveries").status_code == 404
        assert other.get("/jobs").json()["meta"]["total_count"] == 0
    assert client.get(f"/jobs/{uuid.uuid4()}").json()["type"] == "NotFoundError"
