"""Functions and revisions through the official `opperai` SDK: every method, typed errors, isolation."""

from __future__ import annotations

import json
import uuid

import pytest
from opperai import Opper, errors
from pydantic import BaseModel, Field
from sqlalchemy import select

from app.store.tables import Job, Span


class Question(BaseModel):
    question: str = Field(description="What to answer")


class Answer(BaseModel):
    answer: str = Field(description="The answer")


@pytest.fixture
def opper(stack, key) -> Opper:
    return Opper(http_bearer=key, server_url=stack.v2)


def prompt_for(fake_provider, marker: str) -> dict[str, str]:
    """The messages (role -> content) of the provider request whose user message holds `marker`."""
    for record in reversed(fake_provider.stats()["recent"]):
        messages = (record.get("body") or {}).get("messages") or []
        contents = {
            m["role"]: m["content"] if isinstance(m["content"], str) else json.dumps(m["content"]) for m in messages
        }
        if marker in contents.get("user", ""):
            return contents
    raise AssertionError(f"no provider request carried {marker!r}")


def test_functions_group(opper):
    created = opper.functions.create(
        name="sdk/answer.v1",
        instructions="Answer the question.",
        description="answers questions",
        input_schema=Question,
        output_schema=Answer,
        model="openai/gpt-4o-mini",
        configuration={"invocation.cache.ttl": 0, "invocation.few_shot.count": 2},
    )
    assert created.name == "sdk/answer.v1" and created.instructions == "Answer the question."
    assert created.description == "answers questions"
    assert created.input_schema["properties"]["question"]["type"] == "string"
    assert created.output_schema["required"] == ["answer"]
    assert created.model == "openai/gpt-4o-mini"
    configuration = created.configuration.model_dump(by_alias=True)
    assert configuration["invocation.few_shot.count"] == 2
    assert configuration["invocation.structured_generation.max_attempts"] == 5
    assert created.dataset_id and created.revision_id and created.observer_enabled is True

    assert opper.functions.get(function_id=created.id).model_dump() == created.model_dump()
    assert opper.functions.get_by_name(name="sdk/answer.v1").model_dump() == created.model_dump()

    opper.functions.create(name="sdk/other", instructions="Other.")
    listed = opper.functions.list(name="sdk/", sort="name", offset=0, limit=10)
    assert listed.meta.total_count == 2
    assert [(f.name, f.revision_id) for f in listed.data] == [
        ("sdk/answer.v1", created.revision_id),
        ("sdk/other", listed.data[1].revision_id),
    ]
    assert listed.data[0].instructions == "Answer the question." and listed.data[0].model == "openai/gpt-4o-mini"
    assert [f.name for f in opper.functions.list(sort="-name", limit=1).data] == ["sdk/other"]

    updated = opper.functions.update(function_id=created.id, instructions="Answer in one word.", model="fake/short")
    assert updated.instructions == "Answer in one word." and updated.model == "fake/short"
    assert updated.revision_id != created.revision_id and updated.dataset_id == created.dataset_id
    assert updated.description == "answers questions"  # fields not sent are kept

    answer = opper.functions.call(function_id=created.id, input={"question": "Why is the sky blue?"})
    assert isinstance(Answer.model_validate(answer.json_payload).answer, str)
    assert answer.cached is False and answer.usage["total_tokens"] > 0
    uuid.UUID(answer.span_id)

    opper.functions.delete(function_id=created.id)
    with pytest.raises(errors.NotFoundError) as missing:
        opper.functions.get(function_id=created.id)
    assert "function_id" in missing.value.data.detail


def test_revision_history_and_a_call_pinned_to_the_first(stack, opper, fake_provider):
    marker = uuid.uuid4().hex
    created = opper.functions.create(
        name="pinned", instructions=f"FIRST-REVISION {marker}", model="fake/pinned", output_schema=Answer
    )
    for n in ("SECOND", "THIRD", "FOURTH"):
        opper.functions.update(function_id=created.id, instructions=f"{n}-REVISION {marker}")
    revisions = opper.functions.revisions.list(function_id=created.id)
    assert revisions.meta.total_count == 4
    assert revisions.data[-1].id == created.revision_id  # newest first: the first revision is last
    assert [r.created_at for r in revisions.data] == sorted((r.created_at for r in revisions.data), reverse=True)
    assert all(isinstance(r.configuration, dict) for r in revisions.data)
    assert [r.id for r in opper.functions.revisions.list(function_id=created.id, offset=3, limit=1).data] == [
        created.revision_id
    ]
    latest = opper.functions.get(function_id=created.id)
    assert latest.instructions.startswith("FOURTH-REVISION") and latest.revision_id == revisions.data[0].id

    first = opper.functions.get_by_revision(function_id=created.id, revision_id=created.revision_id)
    assert first.instructions == f"FIRST-REVISION {marker}" and first.revision_id == created.revision_id

    question = f"pinned-question-{uuid.uuid4().hex}"
    pinned = opper.functions.call_revision(
        function_id=created.id, revision_id=created.revision_id, input=question, tags={"pin": "first"}
    )
    Answer.model_validate(pinned.json_payload)
    system = prompt_for(fake_provider, question)["system"]
    assert f"FIRST-REVISION {marker}" in system and "FOURTH-REVISION" not in system

    latest_question = f"latest-question-{uuid.uuid4().hex}"
    opper.functions.call(function_id=created.id, input=latest_question)
    assert "FOURTH-REVISION" in prompt_for(fake_provider, latest_question)["system"]

    with stack.db.transaction() as session:
        job = session.scalars(select(Job).where(Job.span_id == pinned.span_id)).one()
        span = session.get(Span, pinned.span_id)
    assert job.revision_id == span.revision_id == created.revision_id
    assert span.meta["instructions"] == f"FIRST-REVISION {marker}" and span.tags == {"pin": "first"}


def test_call_creates_the_function_and_revisions(opper):
    opper.call(name="made-by-call", instructions="One.", input="x", model="fake/c")
    function = opper.functions.get_by_name(name="made-by-call")
    assert function.instructions == "One." and function.model == "fake/c" and function.dataset_id
    opper.call(name="made-by-call", instructions="One.", input="y", model="fake/c")
    assert opper.functions.revisions.list(function_id=function.id).meta.total_count == 1
    opper.call(name="made-by-call", instructions="Two.", input="y", model="fake/c")
    assert opper.functions.revisions.list(function_id=function.id).meta.total_count == 2
    assert opper.functions.get(function_id=function.id).instructions == "Two."


def test_typed_errors(opper):
    opper.functions.create(name="taken", instructions="x")
    with pytest.raises(errors.ConflictError) as conflict:
        opper.functions.create(name="taken", instructions="y")
    assert conflict.value.status_code == 409 and "taken" in conflict.value.data.detail
    with pytest.raises(errors.BadRequestError) as bad_schema:
        opper.functions.create(name="bad", instructions="x", output_schema={"type": "nope"})
    assert "output_schema" in bad_schema.value.data.detail
    with pytest.raises(errors.BadRequestError) as bad_limit:
        opper.functions.list(limit=5000)
    assert "limit" in bad_limit.value.data.detail
    with pytest.raises(errors.NotFoundError):
        opper.functions.get_by_name(name="missing/name")
    with pytest.raises(errors.NotFoundError):
        opper.functions.revisions.list(function_id=str(uuid.uuid4()))
    with pytest.raises(errors.NotFoundError):
        opper.functions.call(function_id=str(uuid.uuid4()), input="x")


def test_functions_and_revisions_are_isolated_between_projects(stack, opper):
    mine = opper.functions.create(name="mine", instructions="x")
    theirs = Opper(http_bearer=stack.new_key(), server_url=stack.v2)
    for attempt in (
        lambda: theirs.functions.get(function_id=mine.id),
        lambda: theirs.functions.get_by_name(name="mine"),
        lambda: theirs.functions.update(function_id=mine.id, instructions="hijacked"),
        lambda: theirs.functions.delete(function_id=mine.id),
        lambda: theirs.functions.revisions.list(function_id=mine.id),
        lambda: theirs.functions.get_by_revision(function_id=mine.id, revision_id=mine.revision_id),
        lambda: theirs.functions.call(function_id=mine.id, input="x"),
        lambda: theirs.functions.call_revision(function_id=mine.id, revision_id=mine.revision_id, input="x"),
    ):
        with pytest.raises(errors.NotFoundError):
            attempt()
    assert theirs.functions.list().meta.total_count == 0
    assert opper.functions.get(function_id=mine.id).model_dump() == mine.model_dump()
