"""Refusals of the delivery endpoints: bad webhooks (private addresses too), bad bodies, and the docs."""

from __future__ import annotations

import pytest


def job(**extra) -> dict:
    return {"name": "v", "input": "x", **extra}


@pytest.mark.parametrize(
    ("webhook", "detail"),
    [
        ({"url": "http://127.0.0.1:8080/hook"}, "webhook.url: '127.0.0.1' resolves to a loopback"),
        ({"url": "http://localhost/hook"}, "webhook.url: 'localhost' resolves to a loopback"),
        ({"url": "http://169.254.169.254/latest"}, "webhook.url: '169.254.169.254' resolves to a loopback"),
        ({"url": "http://10.0.0.8/hook"}, "webhook.url: '10.0.0.8' resolves to a loopback"),
        ({"url": "ftp://example.com/hook"}, "webhook.url: must be an absolute http:// or https:// URL"),
        ({"url": "https://example.com/h", "secret": "hunter2"}, "webhook.secret: must start with 'whsec_'"),
    ],
)
def test_bad_webhooks_are_refused_before_anything_is_written(client, webhook, detail):
    response = client.post("/jobs", json=job(webhook=webhook))
    assert response.status_code == 400 and response.json()["detail"].startswith(detail)
    assert client.get("/jobs").json()["meta"]["total_count"] == 0


def test_malformed_job_bodies_are_422(client):
    assert client.post("/jobs", json=job(webhook={"url": "https://example.com", "colour": "red"})).status_code == 422
    assert client.post("/jobs", json=job(metadata={"blob": "x" * 20000})).status_code == 422
    assert client.post("/jobs", json=job(metadata=["not", "an", "object"])).status_code == 422


def test_stream_refusals_are_json_errors(client):
    response = client.post("/call/stream", json={"name": "s", "model": "nowhere/x"})
    assert response.status_code == 400 and response.headers["content-type"].startswith("application/json")
    assert response.json()["detail"].startswith("model:")
    assert client.post("/call/stream", json={"input": "no name"}).status_code == 422


def test_every_delivery_endpoint_is_documented(stack):
    import httpx

    spec = httpx.get(f"{stack.url}/openapi.json").json()
    paths = spec["paths"]
    assert paths["/v2/jobs"]["post"]["responses"]["202"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/JobOut"
    )
    assert "/v2/jobs/{job_id}/deliveries/{delivery_id}/redeliver" in paths
    assert "202" in paths["/v2/call"]["post"]["responses"]
    stream = paths["/v2/call/stream"]["post"]["responses"]["200"]["content"]
    assert stream["text/event-stream"]["schema"]["$ref"].endswith("/StreamChunk")
    assert "/v2/functions/{function_id}/call/stream/{revision_id}" in paths
