"""Batches against a real stack: a few hundred items through the fake provider with per-item results,
validation by line, cancel, retry, the one webhook, Idempotency-Key, and isolation between projects."""

from __future__ import annotations

import json
import uuid

import pytest
from sqlalchemy import func, select
from standardwebhooks.webhooks import Webhook

from app.services.webhooks import generate_secret
from app.store.tables import Job, Span
from app.store.tables_delivery import WebhookDelivery
from tests.helpers import Receiver, eventually, unique, wait_for_batch
from tests.stack import start_stack

IN_SCHEMA = {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}
OUT_SCHEMA = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}


@pytest.fixture(scope="module")
def stack(fake_provider):
    running = start_stack(fake_provider.url, CONVEYOR_ALLOW_PRIVATE_WEBHOOKS="true")
    yield running
    running.stop()


def function(model: str, **extra) -> dict:
    return {"name": f"batch-{uuid.uuid4().hex[:6]}", "model": model, "input_schema": IN_SCHEMA, **extra}


def jsonl(items: list[dict]) -> bytes:
    return b"".join(json.dumps(item).encode() + b"\n" for item in items)


def settled_deliveries(client, batch_id: str) -> dict | None:
    """The batch's deliveries once there is one and none is still pending or sending."""
    listed = client.get(f"/batches/{batch_id}/deliveries").json()
    if listed["data"] and all(d["status"] not in ("pending", "sending") for d in listed["data"]):
        return listed
    return None


def upload(client, spec: dict, body: bytes, **headers):
    files = {"batch": (None, json.dumps(spec), "application/json"), "file": ("items.jsonl", body, "application/jsonl")}
    return client.post("/batches", files=files, headers=headers)


def wait_until_ended(client, batch_id: str, timeout: float = 30) -> dict:
    return wait_for_batch(client, batch_id, timeout=timeout)


def results(client, batch_id: str, **params) -> list[dict]:
    response = client.get(f"/batches/{batch_id}/results", params=params)
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/x-ndjson")
    return [json.loads(line) for line in response.text.splitlines()]


def test_a_few_hundred_items_run_once_each_with_their_results(stack, client, fake_provider):
    model = unique("fake/batch?latency_ms=20")
    items = [{"custom_id": f"item-{i}", "input": {"q": f"question {i}"}, "tags": {"n": str(i)}} for i in range(300)]
    receiver = Receiver()
    secret = generate_secret()
    spec = {
        "function": function(model, output_schema=OUT_SCHEMA, tags={"team": "a"}),
        "metadata": {"run": "nightly"},
        "webhook": {"url": receiver.url, "secret": secret},
    }
    accepted = upload(client, spec, jsonl(items))
    assert accepted.status_code == 202, accepted.text
    batch = accepted.json()
    assert batch["status"] == "running" and batch["counts"]["total"] == 300 and batch["counts"]["queued"] == 300
    assert accepted.headers["location"] == f"/v2/batches/{batch['id']}"
    assert batch["webhook"] == {"url": receiver.url, "secret": None}

    ended = wait_until_ended(client, batch["id"])
    assert ended["status"] == "completed" and ended["finished_at"] and ended["started_at"]
    assert ended["counts"] == {"total": 300, "queued": 0, "running": 0, "succeeded": 300, "failed": 0, "cancelled": 0}
    assert ended["metadata"] == {"run": "nightly"} and ended["estimated_seconds_remaining"] is None
    assert fake_provider.requests_for(model) == 300

    lines = results(client, batch["id"])
    assert [line["custom_id"] for line in lines] == [item["custom_id"] for item in items]  # submission order
    assert all(line["status"] == "succeeded" and line["error"] is None for line in lines)
    assert all(set(line["result"]["json_payload"]) == {"answer"} for line in lines)
    assert len({line["job_id"] for line in lines}) == 300
    job_ids = [line["job_id"] for line in lines]
    with stack.db.transaction() as session:
        per_item = dict(
            session.execute(
                select(Span.job_id, func.count())
                .where(Span.job_id.in_(job_ids), Span.type == "generation")
                .group_by(Span.job_id)
            ).all()
        )
        calls = session.scalars(select(Span).where(Span.job_id.in_(job_ids), Span.type == "call")).all()
        tags = session.scalar(select(Job.task).where(Job.id == job_ids[7]))["tags"]
    assert set(per_item.values()) == {1} and len(per_item) == 300  # one billed attempt per item
    assert tags == {"team": "a", "n": "7"}
    assert ended["usage"]["total_tokens"] == sum(s.total_tokens for s in calls) > 0
    assert ended["cost"]["total"] == pytest.approx(sum(s.cost_generation + s.cost_platform for s in calls))

    listed = eventually(lambda: settled_deliveries(client, batch["id"]), 10, what="the batch webhook delivered")
    assert len(receiver.received) == 1  # one webhook for the whole batch, delivered at its first attempt
    headers, body = receiver.received[0]
    event = Webhook(secret).verify(body, headers)
    assert event["type"] == "batch.completed" and event["data"]["id"] == batch["id"]
    assert event["data"]["counts"]["succeeded"] == 300 and headers["webhook-id"] == f"msg_{batch['id']}"
    with stack.db.transaction() as session:  # the delivery is the batch's, not one of its items'
        deliveries = session.scalars(select(WebhookDelivery).where(WebhookDelivery.batch_id == batch["id"])).all()
        assert [d.job_id for d in deliveries] == [None]
    assert listed["meta"]["total_count"] == 1
    [delivery] = listed["data"]
    assert delivery["batch_id"] == batch["id"] and delivery["job_id"] is None and delivery["status"] == "succeeded"
    assert delivery["attempts"][0]["status_code"] == 200 and delivery["attempts"][0]["next_attempt_at"] is None
    again = client.post(f"/batches/{batch['id']}/deliveries/{delivery['id']}/redeliver")
    assert again.status_code == 202 and again.json()["message_id"] == f"msg_{batch['id']}"
    eventually(lambda: len(receiver.received) >= 2, 10, what="the redelivery")  # the same message, same webhook-id
    assert receiver.received[1][1] == body and receiver.received[1][0]["webhook-id"] == f"msg_{batch['id']}"
    missing = client.post(f"/batches/{batch['id']}/deliveries/nope/redeliver")
    assert missing.status_code == 404 and "delivery_id" in missing.json()["detail"]


def test_invalid_lines_are_reported_by_number_and_refuse_the_batch(client):
    good = {"custom_id": "ok", "input": {"q": "x"}}
    body = b"\n".join(
        [
            json.dumps(good).encode(),
            b"{not json",
            b'["an array"]',
            json.dumps({"custom_id": "ok", "input": {"q": "again"}}).encode(),
            json.dumps({"custom_id": "bad-input", "input": {"q": 42}}).encode(),
            b"",
            json.dumps({"input": {"q": "no id"}}).encode(),
        ]
    )
    refused = upload(client, {"function": function("fake/a")}, body)
    assert refused.status_code == 400, refused.text
    error = refused.json()
    assert error["type"] == "BadRequestError" and error["detail"]["invalid_count"] == 5
    listed = {item["line"]: item for item in error["detail"]["invalid_items"]}
    assert sorted(listed) == [2, 3, 4, 5, 7]
    assert listed[2]["reason"].startswith("not valid JSON")
    assert listed[3]["reason"] == "must be a JSON object with custom_id and input"
    assert listed[4] == {"line": 4, "custom_id": "ok", "reason": "custom_id: 'ok' was already used on line 1"}
    assert listed[5]["custom_id"] == "bad-input" and "input_schema" in listed[5]["reason"]
    assert client.get("/batches").json()["meta"]["total_count"] == 0  # nothing was kept

    skipped = upload(client, {"function": function("fake/a"), "on_invalid": "skip"}, body)
    assert skipped.status_code == 202, skipped.text
    batch = skipped.json()
    assert batch["counts"]["total"] == 1 and batch["invalid_count"] == 5
    assert [item["line"] for item in batch["invalid_items"]] == [2, 3, 4, 5, 7]
    assert [line["custom_id"] for line in results(client, batch["id"])] == ["ok"]


def test_json_bodies_and_bad_requests_name_the_field(client):
    items = [{"custom_id": "a", "input": {"q": "x"}}]
    assert client.post("/batches", json={"items": items}).json()["detail"].startswith("function_id: give exactly one")
    missing = client.post("/batches", json={"function": function("fake/a")})
    assert missing.status_code == 400 and missing.json()["detail"].startswith("items: is required")
    bad_model = client.post("/batches", json={"function": function("nope/x"), "items": items})
    assert bad_model.status_code == 400 and bad_model.json()["detail"].startswith("function.model")
    unknown = client.post("/batches", json={"function": function("fake/a"), "items": items, "colour": "red"})
    assert unknown.status_code == 400 and unknown.json()["detail"].startswith("body.colour")
    window = client.post("/batches", json={"function": function("fake/a"), "items": items, "completion_window": "1y"})
    assert window.status_code == 400 and window.json()["detail"].startswith("body.completion_window")
    wrong_type = client.post("/batches", content=b"x", headers={"content-type": "text/plain"})
    assert wrong_type.status_code == 400 and wrong_type.json()["detail"].startswith("Content-Type")
    no_file = client.post("/batches", files={"batch": (None, "{}")})
    assert no_file.status_code == 400 and no_file.json()["detail"].startswith("file: is missing")
    missing_function = client.post("/batches", json={"function_id": str(uuid.uuid4()), "items": items})
    assert missing_function.status_code == 404

    stored = client.post(
        "/functions", json={"name": f"f-{uuid.uuid4().hex[:6]}", "instructions": "answer", "model": "fake/a"}
    ).json()
    accepted = client.post("/batches", json={"function_id": stored["id"], "items": items})
    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["function_id"] == stored["id"]
    assert wait_until_ended(client, accepted.json()["id"])["counts"]["succeeded"] == 1


def test_cancel_stops_queued_and_running_items(stack, client, fake_provider):
    model = unique("fake/slow?latency_ms=1500")
    items = [{"custom_id": f"c{i}", "input": {"q": str(i)}} for i in range(400)]
    batch = client.post("/batches", json={"function": function(model), "items": items}).json()
    wait_for_batch(client, batch["id"], lambda b: b["counts"]["running"] > 0, timeout=15)
    cancelled = client.post(f"/batches/{batch['id']}/cancel")
    sent_before = fake_provider.requests_for(model)
    assert cancelled.status_code == 200
    now = cancelled.json()
    # Running items are cancelled with the queued ones: the batch ends at once.
    assert now["status"] == "cancelled" and now["counts"]["queued"] == 0 and now["counts"]["running"] == 0
    ended = wait_until_ended(client, batch["id"])
    counts = ended["counts"]
    assert counts == now["counts"]  # nothing ran on: the calls in flight were abandoned, not written
    assert counts["succeeded"] + counts["cancelled"] == 400 and counts["cancelled"] > 0
    eventually(lambda: not fake_provider.stats()["in_flight"], 10, what="the abandoned calls' requests gone")
    assert fake_provider.requests_for(model) == sent_before  # no item started after the cancel
    lines = results(client, batch["id"], status="cancelled")
    assert len(lines) == counts["cancelled"] and lines[0]["error"]["type"] == "BatchCancelled"
    with stack.db.transaction() as session:  # never run, never billed: no spans at all
        cancelled_ids = [line["job_id"] for line in lines]
        assert session.scalar(select(func.count()).select_from(Span).where(Span.job_id.in_(cancelled_ids))) == 0
    again = client.post(f"/batches/{batch['id']}/cancel")
    assert again.status_code == 200 and again.json()["status"] == "cancelled"


def test_retry_runs_the_failed_items_again_as_a_new_batch(client, fake_provider):
    model = unique("fake/flaky?fail=400&fail_times=3")  # the first 3 requests are refused, not retried
    items = [{"custom_id": f"r{i}", "input": {"q": str(i)}} for i in range(10)]
    batch = client.post("/batches", json={"function": function(model), "items": items}).json()
    assert client.post(f"/batches/{batch['id']}/retry").status_code in (202, 409)  # 409 while it runs
    ended = wait_until_ended(client, batch["id"])
    assert ended["status"] == "completed"  # failed items do not fail the batch
    assert (ended["counts"]["failed"], ended["counts"]["succeeded"]) == (3, 7)
    failed = results(client, batch["id"], status="failed")
    assert len(failed) == 3 and failed[0]["error"]["type"] == "TaskFailedError" and failed[0]["result"] is None

    retried = client.post(f"/batches/{batch['id']}/retry")
    assert retried.status_code == 202, retried.text
    second = retried.json()
    assert second["id"] != batch["id"] and second["counts"]["total"] == 3
    assert second["function_id"] == batch["function_id"]
    done = wait_until_ended(client, second["id"])
    assert done["counts"]["succeeded"] == 3
    assert sorted(line["custom_id"] for line in results(client, second["id"])) == sorted(f["custom_id"] for f in failed)
    nothing = client.post(f"/batches/{second['id']}/retry")
    assert nothing.status_code == 409


def test_idempotency_key_gives_the_same_batch_back(client):
    spec = {"function": function("fake/a")}
    body = jsonl([{"custom_id": "a", "input": {"q": "x"}}])
    first = upload(client, spec, body, **{"Idempotency-Key": "nightly-1"})
    second = upload(client, spec, body, **{"Idempotency-Key": "nightly-1"})
    assert first.status_code == second.status_code == 202
    assert second.json()["id"] == first.json()["id"] and second.headers["idempotent-replayed"] == "true"
    other = upload(client, spec, jsonl([{"custom_id": "b", "input": {"q": "y"}}]), **{"Idempotency-Key": "nightly-1"})
    assert other.status_code == 422
    assert client.get("/batches").json()["meta"]["total_count"] == 1


def test_batches_are_private_to_their_project(stack, client):
    batch = client.post(
        "/batches", json={"function": function("fake/a"), "items": [{"custom_id": "a", "input": {"q": "x"}}]}
    ).json()
    listed = client.get("/batches", params={"status": ["running", "completed"]}).json()
    assert [b["id"] for b in listed["data"]] == [batch["id"]]
    with stack.client(stack.new_key()) as other:
        for method, path in [
            ("GET", f"/batches/{batch['id']}"),
            ("GET", f"/batches/{batch['id']}/results"),
            ("POST", f"/batches/{batch['id']}/cancel"),
            ("POST", f"/batches/{batch['id']}/retry"),
        ]:
            response = other.request(method, path)
            assert response.status_code == 404, (path, response.text)
            assert response.json()["type"] == "NotFoundError"
        assert other.get("/batches").json() == {"meta": {"total_count": 0}, "data": []}
    assert client.get("/batches", params={"status": "nope"}).status_code == 400
    assert client.get("/batches", params={"limit": 0}).status_code == 400


def test_the_endpoints_are_documented(stack):
    import httpx

    paths = httpx.get(f"{stack.url}/openapi.json").json()["paths"]
    submit = paths["/v2/batches"]["post"]
    assert set(submit["requestBody"]["content"]) == {"application/json", "multipart/form-data"}
    assert submit["responses"]["202"]["content"]["application/json"]["schema"]["$ref"].endswith("/BatchOut")
    assert "application/x-ndjson" in paths["/v2/batches/{batch_id}/results"]["get"]["responses"]["200"]["content"]
    assert {"/v2/batches/{batch_id}/cancel", "/v2/batches/{batch_id}/retry"} <= set(paths)


def test_job_listings_leave_batch_items_out_unless_asked(client):
    items = [{"custom_id": f"l{i}", "input": {"q": str(i)}} for i in range(3)]
    batch = client.post("/batches", json={"function": function("fake/a"), "items": items}).json()
    job = client.post("/jobs", json={"name": "alone", "input": "x", "model": "fake/a"}).json()
    listed = client.get("/jobs").json()
    assert [j["id"] for j in listed["data"]] == [job["id"]] and listed["meta"]["total_count"] == 1
    of_batch = client.get("/jobs", params={"batch_id": batch["id"]}).json()
    assert of_batch["meta"]["total_count"] == 3 and job["id"] not in {j["id"] for j in of_batch["data"]}
    everything = client.get("/jobs", params={"include_batch_items": "true"}).json()
    assert everything["meta"]["total_count"] == 4
    refused = client.get("/jobs", params={"include_batch_items": "maybe"})
    assert refused.status_code in (400, 422) and "include_batch_items" in json.dumps(refused.json())
