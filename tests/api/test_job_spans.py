"""`GET /v2/spans?job_id=` and the job fields the console reads (trace_id, batch_id, custom_id, input),
over HTTP against a real API, worker and fake provider."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest

from tests.console.seed import call, submit_batch, wait_batch


@pytest.fixture
def http(stack, key):
    with stack.client(key) as client:
        yield client


def error_detail(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    return str(response.json()["detail"])


def test_a_jobs_call_span_and_every_attempt(http):
    down = f"fake/down?fail=503&run={uuid.uuid4().hex}"
    job = call(http, "spans-of-a-job", {"q": "hello"}, tags={"t": "1"}, model=[down, "openai/gpt-4o-mini"])
    plain = call(http, "spans-of-another", "hi")

    spans = http.get("/spans", params={"job_id": job["id"]}).json()
    assert spans["meta"]["total_count"] == len(spans["data"]) == 3
    root, failed, answered = spans["data"]
    assert (root["type"], root["id"], root["job_id"]) == ("call", job["span_id"], job["id"])
    assert root["input"] == {"q": "hello"} and root["tags"] == {"t": "1"} and root["trace_id"] == job["trace_id"]
    assert root["model"] == "openai/gpt-4o-mini" and root["error"] is None
    assert root["usage"] == {
        k: job["result"]["usage"][k] for k in ("input_tokens", "output_tokens", "total_tokens")
    } | {"reasoning_tokens": job["result"]["usage"]["output_tokens_details"]["reasoning_tokens"]}
    assert root["cost"]["total"] == pytest.approx(job["result"]["cost"]["total"])
    assert [s["type"] for s in (failed, answered)] == ["generation", "generation"]
    assert all(s["parent_id"] == root["id"] for s in (failed, answered))
    assert failed["model"] == down and "503" in failed["error"] and answered["error"] is None
    assert answered["duration_ms"] >= 0 and answered["usage"]["total_tokens"] > 0

    both = http.get("/spans", params={"job_id": [job["id"], plain["id"]], "type": "call"}).json()["data"]
    assert {(s["job_id"], s["type"]) for s in both} == {(job["id"], "call"), (plain["id"], "call")}


def test_other_projects_and_unknown_ids_give_nothing(stack, http):
    job = call(http, "private", "secret input")
    with stack.client(stack.new_key()) as other:
        assert other.get("/spans", params={"job_id": job["id"]}).json() == {"meta": {"total_count": 0}, "data": []}
    assert http.get("/spans", params={"job_id": ["not-a-uuid", str(uuid.uuid4())]}).json()["data"] == []


def test_bad_queries_are_4xx_naming_the_field(stack, http):
    assert "job_id" in error_detail(http.get("/spans"), 400)
    too_many = [str(uuid.uuid4()) for _ in range(101)]
    assert "job_id" in error_detail(http.get("/spans", params={"job_id": too_many}), 400)
    assert "type" in error_detail(http.get("/spans", params={"job_id": str(uuid.uuid4()), "type": "user"}), 422)
    assert httpx.get(stack.v2 + "/spans", params={"job_id": str(uuid.uuid4())}).status_code == 401


def test_jobs_carry_their_trace_batch_and_input(http):
    job = call(http, "with-input", {"a": [1, 2]})
    assert job["input"] == {"a": [1, 2]} and job["trace_id"] and job["batch_id"] is None
    listed = http.get("/jobs", params={"name": "with-input"}).json()["data"]
    assert [j["id"] for j in listed] == [job["id"]] and listed[0]["input"] is None  # lists stay small
    assert listed[0]["trace_id"] == job["trace_id"]
    trace = http.get(f"/traces/{job['trace_id']}").json()
    assert job["span_id"] in {s["id"] for s in trace["spans"]}

    batch = wait_batch(http, submit_batch(http, f"b-{uuid.uuid4().hex[:6]}", ["x"])["id"])
    (line,) = [json.loads(text) for text in http.get(f"/batches/{batch['id']}/results").iter_lines() if text]
    item = http.get(f"/jobs/{line['job_id']}").json()
    assert (item["batch_id"], item["custom_id"], item["input"]) == (batch["id"], "item-1", "x")


def test_the_spans_listing_is_documented(stack):
    paths = httpx.get(stack.url + "/openapi.json").json()["paths"]
    assert {"get", "post"} <= set(paths["/v2/spans"])
    params = {p["name"] for p in paths["/v2/spans"]["get"]["parameters"]}
    assert {"job_id", "type"} <= params
    job = stack_schema(stack)["JobOut"]["properties"]
    assert {"trace_id", "batch_id", "custom_id", "input"} <= set(job)


def stack_schema(stack) -> dict:
    return httpx.get(stack.url + "/openapi.json").json()["components"]["schemas"]
