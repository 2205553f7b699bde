"""Bad input of every kind gets a clear 4xx JSON error, and nothing is written or enqueued."""

from __future__ import annotations

import httpx
import pytest
import redis
from sqlalchemy import func, select

from app.store.tables import Job

SCHEMA = {"type": "object", "properties": {"country": {"type": "string"}}, "required": ["country"]}


def job_count(stack) -> int:
    with stack.db.transaction() as session:
        return session.scalar(select(func.count()).select_from(Job))


def queue_length(stack) -> int:
    return redis.Redis.from_url(stack.settings.redis_url).llen("conveyor.interactive")


@pytest.mark.parametrize(
    ("body", "field", "phrase"),
    [
        ({"name": "t", "input_schema": SCHEMA, "input": {"country": 7}}, "input", "country"),
        ({"name": "t", "input_schema": SCHEMA, "input": {}}, "input", "required"),
        ({"name": "t", "input_schema": {"type": "nonsense"}, "input": 1}, "input_schema", "nonsense"),
        ({"name": "t", "output_schema": {"properties": {"a": {"type": 3}}}}, "output_schema", ""),
        ({"name": "t", "model": "nowhere/model-x"}, "model", "nowhere"),
        ({"name": "t", "model": "no-prefix"}, "model", ""),
        ({"name": "t", "model": []}, "model", "empty"),
        ({"name": "t", "model": ["fake/a", "bogus/b"]}, "model[1]", "bogus"),
        (
            {"name": "t", "configuration": {"invocation.structured_generation.max_attempts": 0}},
            "max_attempts",
            "",
        ),
        ({"name": "t", "configuration": {"invocation.cache.ttl": "soon"}}, "cache.ttl", ""),
    ],
)
def test_bad_call_is_400_naming_the_field(stack, key, body, field, phrase):
    before_jobs, before_queue = job_count(stack), queue_length(stack)
    with stack.client(key) as client:
        response = client.post("/call", json=body)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()
    assert error["type"] == "BadRequestError"
    assert field in error["detail"] and phrase in error["detail"]
    assert job_count(stack) == before_jobs and queue_length(stack) == before_queue


def test_unknown_configuration_keys_are_ignored(stack, key):
    with stack.client(key) as client:
        response = client.post(
            "/call",
            json={
                "name": "t",
                "input": "x",
                "model": "fake/ok",
                "configuration": {"beta.evaluation.enabled": True},
            },
        )
    assert response.status_code == 200


def test_malformed_json_is_400(stack, key):
    with stack.client(key) as client:
        response = client.post("/call", content=b'{"name": "t",', headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json()["message"] == "the request body is not valid JSON"


def test_shape_errors_are_422_with_detail(stack, key):
    with stack.client(key) as client:
        missing_name = client.post("/call", json={"input": "x"})
        bad_tags = client.post("/call", json={"name": "t", "tags": {"a": 1}})
    assert missing_name.status_code == 422 and "name" in missing_name.json()["message"]
    assert bad_tags.status_code == 422 and "tags.a" in bad_tags.json()["message"]


def test_oversized_body_is_413(stack, key):
    big = "x" * (stack.settings.max_body_bytes + 1)
    with stack.client(key) as client:
        response = client.post("/call", json={"name": "t", "input": big})
    assert response.status_code == 413
    assert "CONVEYOR_MAX_BODY_BYTES" in response.json()["detail"]


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer"}],
)
def test_missing_or_unknown_key_is_401(stack, headers):
    response = httpx.post(stack.v2 + "/call", json={"name": "t", "input": "x"}, headers=headers)
    assert response.status_code == 401
    assert response.json()["type"] == "UnauthorizedError" and response.json()["detail"]


def test_health_and_readiness(stack):
    assert httpx.get(stack.url + "/healthz").json() == {"status": "ok"}
    ready = httpx.get(stack.url + "/readyz")
    assert ready.status_code == 200 and ready.json()["checks"] == {"redis": "ok", "database": "ok"}


def test_every_route_is_in_the_openapi_document(stack):
    paths = httpx.get(stack.url + "/openapi.json").json()["paths"]
    assert {"/v2/call", "/healthz", "/readyz"} <= set(paths)


def test_batch_uploads_have_their_own_larger_limit(stack, key):
    """The body limit of /v2/call does not cap /v2/batches (its uploads stream to disk)."""
    items = [{"custom_id": f"c{i}", "input": "x" * 200} for i in range(6000)]  # ~1.5 MB > the stack's 1 MB
    with stack.client(key) as client:
        too_big_for_call = client.post("/call", json={"name": "t", "input": items})
        batch = client.post("/batches", json={"function": {"name": "big", "model": "fake/big"}, "items": items})
    assert too_big_for_call.status_code == 413
    assert batch.status_code == 202, batch.text
    assert batch.json()["counts"]["total"] == 6000
