"""The API answers as its OpenAPI document says: 405s list every method, streaming routes' errors are
documented as the JSON they are, and another project's span is as unknown as a span that never was."""

from __future__ import annotations

import uuid

import pytest


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PUT", "/functions/{id}", "DELETE, GET, HEAD, PATCH"),
        ("POST", "/spans/{id}", "DELETE, GET, HEAD, PATCH"),
        ("PUT", "/models/custom/{id}", "DELETE, GET, HEAD, PATCH"),
        ("DELETE", "/functions", "GET, HEAD, POST"),
        ("PUT", "/call", "POST"),
    ],
)
def test_405_allow_lists_every_method_of_the_path(stack, key, method, path, allowed):
    with stack.client(key) as client:
        response = client.request(method, path.format(id=uuid.uuid4()))
    assert response.status_code == 405
    assert response.headers["allow"] == allowed
    assert response.json()["type"] == "MethodNotAllowedError"


def test_streaming_routes_document_items_and_json_errors(stack):
    import httpx

    document = httpx.get(stack.url + "/openapi.json", timeout=10).json()
    streamed = 0
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                for media, content in response.get("content", {}).items():
                    schema = content.get("schema", {})
                    assert not ("$ref" in schema and "type" in schema), (method, path, status)
                    if status[0] in "45":
                        assert media == "application/json", (method, path, status)
                if status == "200" and set(response.get("content", {})) & {"text/event-stream", "application/x-ndjson"}:
                    streamed += 1
                    assert operation["responses"]["404"]["content"]["application/json"]["schema"] == {
                        "$ref": "#/components/schemas/ErrorBody"
                    }
    assert streamed == 4  # the three call streams and the batch results


def test_another_projects_span_answers_as_an_unknown_one(stack):
    owner, other = stack.new_key(), stack.new_key()
    with stack.client(owner) as client:
        theirs = client.post("/spans", json={"name": "private"}).json()["id"]
    unknown = str(uuid.uuid4())
    with stack.client(other) as client:
        for path, field in [("/spans", "parent_id"), ("/call", "parent_span_id"), ("/jobs", "parent_span_id")]:
            answers = []
            for span_id in (theirs, unknown):
                response = client.post(path, json={"name": "child", "input": "x", field: span_id})
                answers.append((response.status_code, response.json()["detail"].replace(span_id, "<id>")))
            assert answers[0] == answers[1] and answers[0][0] == 400, (path, answers)
        for path in ("/spans/{}", "/spans/{}/metrics"):
            assert client.get(path.format(theirs)).status_code == client.get(path.format(unknown)).status_code == 404
