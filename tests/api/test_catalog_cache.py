"""The API's cached catalog (model names, functions' current revisions) never changes what a call
means: a change made through any API process applies to the very next call through every other."""

from __future__ import annotations

import uuid

import httpx
import pytest

from app.store.jobs import JobRepository
from tests.stack import ApiServer

ASYNC = {"Prefer": "respond-async"}


@pytest.fixture
def other_api(stack):
    """A second API process's worth of state: its own app, caches and connection pools, same stack."""
    server = ApiServer(stack.settings)
    server.start()
    yield f"http://127.0.0.1:{server.port}/v2"
    server.stop()


def clients(stack, key: str, other_url: str) -> tuple[httpx.Client, httpx.Client]:
    headers = {"Authorization": f"Bearer {key}"}
    return stack.client(key), httpx.Client(base_url=other_url, headers=headers, timeout=60)


def call_model(stack, client: httpx.Client, name: str, model: str) -> list[str]:
    """The model chain a call ran with, as its job recorded it."""
    response = client.post("/call", json={"name": name, "input": "hi", "model": model})
    assert response.status_code == 200, response.text
    span = client.get(f"/spans/{response.json()['span_id']}").json()
    job = JobRepository(stack.db).get(span["meta"]["job_id"])
    return [entry["name"] for entry in job.task["models"]]


def test_an_alias_changed_through_one_api_applies_to_the_next_call_through_another(stack, key, other_api):
    first, second = clients(stack, key, other_api)
    name = f"fn-{uuid.uuid4().hex[:6]}"
    with first, second:
        made = first.post("/models/aliases", json={"name": "house", "fallback_models": ["fake/one"]})
        assert made.status_code == 200, made.text
        for client in (first, second, first):  # the function exists now: first holds the catalog
            assert call_model(stack, client, name, "house") == ["fake/one"]
        changed = second.patch(f"/models/aliases/{made.json()['id']}", json={"fallback_models": ["fake/two"]})
        assert changed.status_code == 200, changed.text
        assert call_model(stack, first, name, "house") == ["fake/two"]


def test_a_model_name_unknown_to_a_cached_catalog_is_looked_up_again(stack, key, other_api):
    first, second = clients(stack, key, other_api)
    name = f"fn-{uuid.uuid4().hex[:6]}"
    with first, second:
        refused = first.post("/call", json={"name": name, "input": "hi", "model": "brand-new"})
        assert refused.status_code == 400, refused.text
        assert second.post("/models/aliases", json={"name": "brand-new", "fallback_models": ["fake/n"]}).is_success
        assert call_model(stack, first, name, "brand-new") == ["fake/n"]


def submit(client: httpx.Client, body: dict) -> dict:
    response = client.post("/call", json=body, headers=ASYNC)
    assert response.status_code == 202, response.text
    return response.json()


def test_a_definition_changed_back_records_the_function_s_current_revision(stack, key, other_api):
    first, second = clients(stack, key, other_api)
    a = {"name": f"fn-{uuid.uuid4().hex[:6]}", "instructions": "A.", "input": "hi", "model": "fake/a"}
    b = {**a, "instructions": "B."}
    with first, second:
        job_a = submit(first, a)
        function_id = job_a["function_id"]
        assert submit(first, a)["revision_id"] == job_a["revision_id"]  # cached: the same revision
        job_b = submit(second, b)
        assert job_b["revision_id"] != job_a["revision_id"]
        back = submit(first, a)  # A again, after B became current elsewhere: a newer revision than A's first
        current = first.get(f"/functions/{function_id}").json()
        assert back["revision_id"] == current["revision_id"] not in (job_a["revision_id"], job_b["revision_id"])
        assert submit(first, a)["revision_id"] == current["revision_id"]
        assert submit(second, a)["revision_id"] == current["revision_id"]


def test_a_function_patched_through_another_api_is_not_called_at_its_old_revision(stack, key, other_api):
    first, second = clients(stack, key, other_api)
    body = {"name": f"fn-{uuid.uuid4().hex[:6]}", "instructions": "A.", "input": "hi", "model": "fake/a"}
    with first, second:
        job = submit(first, body)
        assert submit(first, body)["revision_id"] == job["revision_id"]  # first holds the catalog now
        patched = second.patch(f"/functions/{job['function_id']}", json={"instructions": "Patched."})
        assert patched.status_code == 200, patched.text
        again = submit(first, body)  # A is no longer current: the call records A as a new revision
        assert again["revision_id"] not in (job["revision_id"], patched.json()["revision_id"])
        assert first.get(f"/functions/{job['function_id']}").json()["revision_id"] == again["revision_id"]
