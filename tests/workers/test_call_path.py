"""`POST /v2/call` end to end: API, Redis, a real Celery worker, Postgres and the fake provider."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select

from app.store.projects import ProjectRepository
from app.store.tables import Job, Span
from tests.helpers import unique

ANSWER_SCHEMA = {
    "type": "object",
    "properties": {"answer": {"type": "string", "description": "The answer"}, "score": {"type": "integer"}},
    "required": ["answer", "score"],
}


def spans_of(stack, span_id: str) -> tuple[Span, list[Span]]:
    with stack.db.transaction() as session:
        root = session.get(Span, span_id)
        children = list(session.scalars(select(Span).where(Span.parent_id == span_id).order_by(Span.start_time)))
    return root, children


def test_reask_succeeds_on_second_attempt_and_sums_usage(stack, key):
    with stack.client(key) as client:
        response = client.post(
            "/call",
            json={
                "name": "reask",
                "input": "question",
                "output_schema": ANSWER_SCHEMA,
                "model": unique("fake/m?invalid_json=first"),
            },
        )
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body["json_payload"]) == {"answer", "score"}
    root, attempts = spans_of(stack, body["span_id"])
    assert len(attempts) == 2
    assert attempts[0].error and "StructuredOutputError" in attempts[0].error
    assert attempts[1].error is None
    assert body["usage"]["input_tokens"] == sum(a.input_tokens for a in attempts)
    assert body["usage"]["output_tokens"] == sum(a.output_tokens for a in attempts)
    assert attempts[1].input_tokens > attempts[0].input_tokens  # the re-ask carries the bad answer
    assert body["cost"]["generation"] == sum(a.cost_generation for a in attempts)
    assert root.total_tokens == body["usage"]["total_tokens"]


def test_fallback_past_a_503_model(stack, key):
    broken, healthy = unique("fake/down?fail=503"), unique("fake/up")
    with stack.client(key) as client:
        response = client.post("/call", json={"name": "fallback", "input": "hi", "model": [broken, healthy]})
    assert response.status_code == 200, response.text
    assert response.json()["message"].startswith("[simulated]")
    root, attempts = spans_of(stack, response.json()["span_id"])
    assert [a.model for a in attempts] == [broken, healthy]
    assert "ProviderServerError" in attempts[0].error
    assert root.model == healthy


def test_exhausted_attempts_give_a_clear_error(stack, key):
    model = unique("fake/bad?invalid_json=always")
    with stack.client(key) as client:
        response = client.post(
            "/call",
            json={
                "name": "exhausted",
                "input": "x",
                "output_schema": ANSWER_SCHEMA,
                "model": model,
                "configuration": {"invocation.structured_generation.max_attempts": 2},
            },
        )
    assert response.status_code == 502
    body = response.json()
    assert body["type"] == "TaskFailedError"
    attempts = body["detail"]["attempts"]
    assert [(a["model"], a["attempt"], a["error_type"]) for a in attempts] == [
        (model, 1, "StructuredOutputError"),
        (model, 2, "StructuredOutputError"),
    ]
    assert all(a["message"] for a in attempts)
    with stack.db.transaction() as session:
        project = ProjectRepository(stack.db).project_for_key(key)
        job = session.scalars(select(Job).where(Job.project_id == project.id, Job.error.is_not(None))).all()
        failed = [j for j in job if j.task["models"][0]["name"] == model]
    assert len(failed) == 1 and failed[0].status == "failed"
    root, spans = spans_of(stack, failed[0].span_id)
    assert root.error and len(spans) == 2  # failed calls are traced and billed too
    assert root.total_tokens == sum(s.total_tokens for s in spans) > 0


def test_cache_hit_skips_the_provider(stack, key, fake_provider):
    model = unique("fake/cached")
    request = {
        "name": "cached",
        "input": {"q": 1},
        "model": model,
        "configuration": {"invocation.cache.ttl": 30},
    }
    with stack.client(key) as client:
        first = client.post("/call", json=request).json()
        calls_after_first = fake_provider.requests_for(model)
        second = client.post("/call", json=request).json()
        changed = client.post("/call", json={**request, "input": {"q": 2}}).json()
    assert calls_after_first == 1
    assert fake_provider.requests_for(model) == 2  # the hit made no request; the changed input did
    assert second["cached"] is True and second["message"] == first["message"]
    assert second["cost"] == {"generation": 0.0, "platform": 0.0, "total": 0.0}
    assert changed["cached"] is False
    root, attempts = spans_of(stack, second["span_id"])
    assert root.cached is True and attempts == []


def test_errors_are_never_cached(stack, key, fake_provider):
    model = unique("fake/flaky?fail=503&fail_times=1")
    request = {
        "name": "nocache-err",
        "input": "x",
        "model": model,
        "configuration": {"invocation.cache.ttl": 30},
    }
    with stack.client(key) as client:
        assert client.post("/call", json=request).status_code == 502
        retry = client.post("/call", json=request)
    assert retry.status_code == 200 and retry.json()["cached"] is False


def test_text_mode_answers_in_message(stack, key):
    with stack.client(key) as client:
        body = client.post("/call", json={"name": "text", "input": "Say hello", "model": unique("fake/t")}).json()
    assert body["message"].startswith("[simulated]") and body["json_payload"] is None


def test_parent_span_ties_calls_into_one_trace(stack, key):
    with stack.client(key) as client:
        parent = client.post("/call", json={"name": "parent", "input": "a", "model": unique("fake/p")}).json()
        child = client.post(
            "/call",
            json={
                "name": "child",
                "input": "b",
                "model": unique("fake/c"),
                "parent_span_id": parent["span_id"],
            },
        ).json()
        unknown = client.post("/call", json={"name": "child", "input": "b", "parent_span_id": str(uuid.uuid4())})
    parent_span, _ = spans_of(stack, parent["span_id"])
    child_span, _ = spans_of(stack, child["span_id"])
    assert child_span.parent_id == parent_span.id and child_span.trace_id == parent_span.trace_id
    assert unknown.status_code == 400 and "parent_span_id" in unknown.json()["detail"]


def test_other_projects_cannot_use_my_spans_as_parents(stack, key):
    other = stack.new_key()
    with stack.client(key) as mine, stack.client(other) as theirs:
        span_id = mine.post("/call", json={"name": "p", "input": "a", "model": unique("fake/p")}).json()["span_id"]
        response = theirs.post("/call", json={"name": "c", "input": "b", "parent_span_id": span_id})
    assert response.status_code == 400


def test_function_is_created_with_a_revision_per_definition(stack, key):
    from app.store.tables import Function, FunctionRevision

    name = f"fn-{uuid.uuid4().hex[:6]}"
    with stack.client(key) as client:
        for instructions in ("first", "first", "second"):
            client.post("/call", json={"name": name, "instructions": instructions, "input": "x", "model": "fake/f"})
    with stack.db.transaction() as session:
        function = session.scalars(select(Function).where(Function.name == name)).one()
        revisions = session.scalar(
            select(func.count()).select_from(FunctionRevision).where(FunctionRevision.function_id == function.id)
        )
        jobs = session.scalars(select(Job).where(Job.function_id == function.id)).all()
    assert revisions == 2
    assert len({j.revision_id for j in jobs}) == 2
