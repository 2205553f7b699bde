"""`opper.stream(...)` and `opper.functions.stream(...)` through the official SDK, reassembling the output."""

from __future__ import annotations

import json
import uuid

import pytest
from opperai import Opper, errors
from pydantic import BaseModel, Field
from sqlalchemy import select

from app.services.json_deltas import assemble
from app.store.tables import Job, JobStatus, Span


class Person(BaseModel):
    name: str = Field(description="Full name")
    age: int


class People(BaseModel):
    people: list[Person]
    summary: str


@pytest.fixture
def opper(stack, key) -> Opper:
    return Opper(http_bearer=key, server_url=stack.v2)


def chunks_of(response) -> list:
    with response.result as events:
        return [event.data for event in events]


def stored(stack, span_id: str) -> tuple[Job, list[Span]]:
    with stack.db.transaction() as session:
        job = session.scalars(select(Job).where(Job.span_id == span_id)).one()
        spans = list(session.scalars(select(Span).where(Span.job_id == job.id)))
    return job, spans


def after_last_error(chunks: list) -> list:
    """What a client keeps: an error chunk followed by more output means a new attempt restarted it."""
    errors_at = [i for i, c in enumerate(chunks) if c.chunk_type == "error"]
    return chunks[errors_at[-1] + 1 :] if errors_at else chunks


def test_text_stream_reassembles_the_stored_message(stack, opper):
    words = " ".join(f"word{i}" for i in range(30))  # the fake echoes it: many deltas
    chunks = chunks_of(opper.stream(name="stream_text", instructions="Repeat", input=words))

    span_id = chunks[0].span_id
    uuid.UUID(span_id)
    assert not chunks[0].delta and not chunks[0].chunk_type  # the span id comes first, alone
    deltas = chunks[1:]
    assert len(deltas) > 5 and {c.chunk_type for c in deltas} == {"text"}
    text = "".join(c.delta for c in deltas)
    job, spans = stored(stack, span_id)
    assert job.status == JobStatus.succeeded and job.stream
    assert text == job.result["message"] and text.startswith("[simulated] word0 word1")
    assert job.result["usage"]["total_tokens"] > 0 and job.result["cost"]["total"] > 0
    assert sorted(s.type for s in spans) == ["call", "generation"]  # traced and billed like a call


@pytest.mark.parametrize("model", ["openai/gpt-4o-mini", "anthropic/claude-3-5-haiku-latest"])
def test_schema_stream_gives_values_at_json_paths(stack, opper, model):
    chunks = chunks_of(
        opper.stream(name=f"stream_people_{model[:6]}", input="list two", output_schema=People, model=model)
    )

    deltas = chunks[1:]
    assert {c.chunk_type for c in deltas} == {"json"}
    assert all(not isinstance(c.delta, list | dict) for c in deltas)
    paths = {c.json_path for c in deltas}
    assert "summary" in paths and "people[0].name" in paths and "people[0].age" in paths
    assert any(isinstance(c.delta, int) and c.json_path.endswith(".age") for c in deltas)
    value = assemble([(c.json_path, c.delta) for c in deltas])
    People.model_validate(value)
    job, _ = stored(stack, chunks[0].span_id)
    assert value == job.result["json_payload"]


def test_a_reask_restarts_the_output_after_an_error_chunk(stack, opper):
    chunks = chunks_of(
        opper.stream(
            name="stream_reask",
            input="x",
            output_schema=People,
            model=f"openai/gpt-4o-mini?invalid_json=first&run={uuid.uuid4().hex[:6]}",
        )
    )
    errors_seen = [c for c in chunks if c.chunk_type == "error"]
    assert len(errors_seen) == 1 and errors_seen[0].error_type == "StructuredOutputError"
    assert "a new attempt follows" in errors_seen[0].error_message
    kept = after_last_error(chunks)
    value = assemble([(c.json_path, c.delta) for c in kept])
    job, spans = stored(stack, chunks[0].span_id)
    assert job.status == JobStatus.succeeded and value == job.result["json_payload"]
    assert len([s for s in spans if s.type == "generation"]) == 2  # both attempts are traced and billed


def test_a_provider_failure_mid_stream_ends_with_an_error_chunk(stack, opper):
    model = "openai/gpt-4o-mini?stream_fail_after=2"
    chunks = chunks_of(opper.stream(name="stream_breaks", input="a long enough input to need pieces", model=model))

    received = chunks[1:-1]
    assert received and {c.chunk_type for c in received} == {"text"}  # what arrived before the break
    last = chunks[-1]
    assert last.chunk_type == "error" and last.error_type == "TaskFailedError"
    assert "ProviderConnectionError" in last.error_message
    job, spans = stored(stack, chunks[0].span_id)
    assert job.status == JobStatus.failed and job.error["type"] == "TaskFailedError"
    generation = next(s for s in spans if s.type == "generation")
    assert generation.error.startswith("ProviderConnectionError")
    assert generation.output == "".join(c.delta for c in received)  # the span keeps what had arrived


def test_function_streams_send_string_deltas(stack, opper):
    function = opper.functions.create(
        name=f"fn_stream_{uuid.uuid4().hex[:6]}", instructions="List", output_schema=People
    )

    chunks = chunks_of(opper.functions.stream(function_id=function.id, input="two people"))
    span_id = chunks[0].span_id
    deltas = [c.delta for c in chunks[1:]]
    assert deltas and all(isinstance(d, str) for d in deltas)
    value = json.loads("".join(deltas))  # the JSON text of the answer, accumulated and parsed at the end
    People.model_validate(value)
    job, _ = stored(stack, span_id)
    assert job.function_id == function.id and value == job.result["json_payload"]

    pinned = chunks_of(
        opper.functions.stream_revision(function_id=function.id, revision_id=function.revision_id, input="again")
    )
    job, _ = stored(stack, pinned[0].span_id)
    assert job.revision_id == function.revision_id and job.status == JobStatus.succeeded


def test_errors_before_streaming_are_typed(stack, opper, key):
    with pytest.raises(errors.BadRequestError) as err:
        opper.stream(name="bad", input="x", model="nowhere/model")
    assert "model" in str(err.value.data.detail)

    function = opper.functions.create(name=f"fn_private_{uuid.uuid4().hex[:6]}", instructions="x")
    other = Opper(http_bearer=stack.new_key(), server_url=stack.v2)
    with pytest.raises(errors.NotFoundError):
        other.functions.stream(function_id=function.id, input="x")
    with pytest.raises(errors.NotFoundError):
        opper.functions.stream_revision(function_id=function.id, revision_id=str(uuid.uuid4()), input="x")


def test_a_cached_answer_streams_whole(stack, opper):
    config = {"invocation.cache.ttl": 60}
    first = chunks_of(opper.stream(name="stream_cached", input="same", output_schema=People, configuration=config))
    again = chunks_of(opper.stream(name="stream_cached", input="same", output_schema=People, configuration=config))

    def value(chunks):
        return assemble([(c.json_path, c.delta) for c in chunks[1:]])

    assert value(again) == value(first)
    job, spans = stored(stack, again[0].span_id)
    assert job.result["cached"] is True and job.result["cost"]["total"] == 0
