"""Spans, metrics, traces and analytics over plain HTTP: wire types, status codes and error bodies."""

from __future__ import annotations

import uuid

import pytest


@pytest.fixture
def http(stack, key):
    with stack.client(key) as client:
        yield client


def error_of(response, status: int, error_type: str) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["type"] == error_type and "detail" in body
    return str(body["detail"])


def test_span_wire_format(http):
    span_id = str(uuid.uuid4()).upper()
    created = http.post(
        "/spans",
        json={"name": "s", "id": span_id, "start_time": "2025-01-01T10:00:00+02:00", "score": 3, "input": 5},
    )
    assert created.status_code == 200, created.text
    body = created.json()
    assert body["id"] == span_id.lower()  # ids are stored in canonical form
    assert body["start_time"] == "2025-01-01T08:00:00Z" and body["score"] == 3 and body["input"] == 5
    uuid.UUID(body["trace_id"])

    fetched = http.get(f"/spans/{span_id}")  # any spelling of the UUID finds it
    assert fetched.status_code == 200 and fetched.json()["feedback"] is None

    naive = http.post("/spans", json={"name": "naive", "start_time": "2025-01-01T10:00:00"}).json()
    assert naive["start_time"] == "2025-01-01T10:00:00Z"

    deleted = http.delete(f"/spans/{span_id}")
    assert deleted.status_code == 204 and deleted.content == b""


def test_span_input_errors(http):
    parent = http.post("/spans", json={"name": "parent"}).json()
    taken = http.post("/spans", json={"name": "again", "id": parent["id"]})
    assert error_of(taken, 409, "ConflictError").startswith("id: ")
    assert "score" in error_of(http.post("/spans", json={"name": "s", "score": 0.5}), 422, "RequestValidationError")
    assert "name" in error_of(http.post("/spans", json={"name": ""}), 422, "RequestValidationError")
    other_trace = http.post("/spans", json={"name": "s", "parent_id": parent["id"], "trace_id": str(uuid.uuid4())})
    assert error_of(other_trace, 400, "BadRequestError").startswith("trace_id: ")
    own_id = str(uuid.uuid4())
    self_parent = http.post("/spans", json={"name": "s", "id": own_id, "parent_id": own_id})
    assert error_of(self_parent, 400, "BadRequestError").startswith("parent_id: ")
    backwards = http.post(
        "/spans", json={"name": "s", "start_time": "2025-01-02T00:00:00Z", "end_time": "2025-01-01T00:00:00Z"}
    )
    assert error_of(backwards, 400, "BadRequestError").startswith("end_time: ")
    # PATCH takes input/output as strings (the SDK types them so)
    not_text = http.patch(f"/spans/{parent['id']}", json={"input": {"a": 1}})
    assert "input" in error_of(not_text, 422, "RequestValidationError")
    patched = http.patch(f"/spans/{parent['id']}", json={"input": "text", "meta": None})
    assert patched.status_code == 200 and patched.json()["input"] == "text"


def test_client_chosen_trace_id_joins_spans_without_parents(http):
    trace_id = str(uuid.uuid4())
    first = http.post("/spans", json={"name": "first", "trace_id": trace_id, "start_time": "2025-01-01T00:00:00Z"})
    second = http.post("/spans", json={"name": "second", "trace_id": trace_id, "start_time": "2025-01-01T00:00:01Z"})
    assert first.json()["trace_id"] == second.json()["trace_id"] == trace_id
    trace = http.get(f"/traces/{trace_id}").json()
    assert [s["name"] for s in trace["spans"]] == ["first", "second"] and trace["name"] == "first"
    listed = http.get("/traces", params={"offset": 0, "limit": 100}).json()
    assert listed["meta"]["total_count"] == 1 and listed["data"][0]["id"] == trace_id
    assert listed["data"][0]["duration_ms"] is None  # no span has ended


def test_metric_edges(http):
    span = http.post("/spans", json={"name": "s"}).json()
    base = f"/spans/{span['id']}/metrics"
    first = http.post(base, json={"dimension": "a", "value": 1}).json()
    second = http.post(base, json={"dimension": "b", "value": 2.5}).json()
    assert isinstance(first["value"], float) and first["created_at"].endswith("Z")
    rename = http.patch(f"{base}/{second['id']}", json={"dimension": "a"})
    assert error_of(rename, 409, "ConflictError").startswith("dimension: ")
    nulled = http.patch(f"{base}/{second['id']}", json={"value": None})
    assert error_of(nulled, 400, "BadRequestError") == "value: cannot be null"
    not_finite = http.post(base, content=b'{"dimension":"c","value":NaN}', headers={"content-type": "application/json"})
    assert not_finite.status_code in (400, 422)
    assert http.get(f"/spans/{span['id']}/metrics/{uuid.uuid4()}").status_code == 404
    assert http.get(f"{base}", params={"offset": -1}).status_code == 400
    listed = http.get(base, params={"offset": 0, "limit": 1000}).json()
    assert listed["meta"]["total_count"] == 2 and [m["dimension"] for m in listed["data"]] == ["a", "b"]


def test_trace_and_analytics_parameters(http):
    assert error_of(http.get("/traces", params={"limit": 1001}), 400, "BadRequestError").startswith("limit: ")
    week = http.get("/analytics/usage", params={"granularity": "week"})
    assert error_of(week, 400, "BadRequestError").startswith("granularity: ")
    bad_date = http.get("/analytics/usage", params={"from_date": "yesterday"})
    assert "from_date" in error_of(bad_date, 422, "RequestValidationError")
    repeated = http.get(
        "/analytics/usage",
        params=[("fields", "total_tokens"), ("fields", "nope"), ("group_by", "model")],
    )
    assert "'nope'" in error_of(repeated, 400, "BadRequestError")
    assert http.get("/analytics/usage", params={"from_date": "2001-01-01", "to_date": "2001-02-01"}).json() == []


def test_every_endpoint_is_documented(stack):
    import httpx

    paths = httpx.get(stack.url + "/openapi.json").json()["paths"]
    expected = {
        "/v2/spans": {"post"},
        "/v2/spans/{span_id}": {"get", "patch", "delete"},
        "/v2/spans/{span_id}/metrics": {"get", "post"},
        "/v2/spans/{span_id}/metrics/{metric_id}": {"get", "patch", "delete"},
        "/v2/traces": {"get"},
        "/v2/traces/{trace_id}": {"get"},
        "/v2/analytics/usage": {"get"},
    }
    for path, methods in expected.items():
        assert methods <= set(paths[path]), path
        for method in methods - {"delete"}:
            ok = paths[path][method]["responses"]["200"]["content"]["application/json"]["schema"]
            assert ok, (path, method)
