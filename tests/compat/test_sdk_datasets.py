"""Datasets, entries, save_examples and feedback through the official `opperai` SDK."""

from __future__ import annotations

import json
import uuid

import pytest
from opperai import Opper, errors

from tests.compat.test_sdk_functions import prompt_for
from tests.unit.test_fewshot import TOPICS


@pytest.fixture
def opper(stack, key) -> Opper:
    return Opper(http_bearer=key, server_url=stack.v2)


def test_entries_group(opper):
    dataset_id = opper.functions.create(name="entries", instructions="x").dataset_id
    made = opper.datasets.create_entry(
        dataset_id=dataset_id, input={"city": "Paris"}, output={"country": "France"}, comment="capital"
    )
    assert (made.input, made.output, made.expected, made.comment) == (
        '{"city": "Paris"}',
        '{"country": "France"}',
        None,
        "capital",
    )
    text = opper.datasets.create_entry(dataset_id=dataset_id, input="Oslo", output="Norway", expected="Norway")
    assert (text.input, text.output, text.expected) == ("Oslo", "Norway", "Norway")

    assert opper.datasets.get_entry(dataset_id=dataset_id, entry_id=made.id).model_dump() == made.model_dump()
    listed = opper.datasets.list_entries(dataset_id=dataset_id, offset=0, limit=10)
    assert listed.meta.total_count == 2 and [e.id for e in listed.data] == [text.id, made.id]

    updated = opper.datasets.entries.update(dataset_id=dataset_id, entry_id=made.id, expected={"country": "FR"})
    assert json.loads(updated.expected) == {"country": "FR"} and updated.comment == "capital"

    found = opper.datasets.query_entries(dataset_id=dataset_id, query="paris", limit=5)
    assert [e.id for e in found] == [made.id]

    opper.datasets.delete_entry(dataset_id=dataset_id, entry_id=made.id)
    with pytest.raises(errors.NotFoundError):
        opper.datasets.get_entry(dataset_id=dataset_id, entry_id=made.id)
    with pytest.raises(errors.NotFoundError):
        opper.datasets.list_entries(dataset_id=str(uuid.uuid4()))
    with pytest.raises(errors.BadRequestError) as bad:
        opper.datasets.query_entries(dataset_id=dataset_id, query="x", limit=0)
    assert "limit" in bad.value.data.detail


def test_save_examples_and_feedback(opper):
    answer = opper.call(name="rated", instructions="Repeat.", input="hello there", model="fake/r")
    function = opper.functions.get_by_name(name="rated")
    saved = opper.spans.save_examples(span_id=answer.span_id)
    assert saved.dataset_id == function.dataset_id
    assert (saved.input, saved.output) == ("hello there", answer.message)
    entry = opper.datasets.get_entry(dataset_id=saved.dataset_id, entry_id=saved.dataset_entry_id)
    assert (entry.input, entry.output) == ("hello there", answer.message)

    second = opper.call(name="rated", instructions="Repeat.", input="good answer", model="fake/r")
    feedback = opper.spans.submit_feedback(span_id=second.span_id, score=1.0, comment="spot on")
    assert (feedback.span_id, feedback.score, feedback.example_saved, feedback.comment) == (
        second.span_id,
        1.0,
        True,
        "spot on",
    )
    third = opper.call(name="rated", instructions="Repeat.", input="meh", model="fake/r")
    assert opper.spans.submit_feedback(span_id=third.span_id, score=0.0).example_saved is False
    forced = opper.spans.submit_feedback(span_id=third.span_id, score=0.2, save_to_dataset=True)
    assert forced.example_saved is True and forced.score == 0.2
    inputs = sorted(e.input for e in opper.datasets.list_entries(dataset_id=function.dataset_id).data)
    assert inputs == ["good answer", "hello there", "meh"]

    with pytest.raises(errors.NotFoundError):
        opper.spans.save_examples(span_id=str(uuid.uuid4()))
    with pytest.raises(errors.BadRequestError) as bad:
        opper.spans.submit_feedback(span_id=second.span_id, score=2.0)
    assert "score" in bad.value.data.detail


def test_datasets_are_isolated_between_projects(stack, opper):
    dataset_id = opper.functions.create(name="private", instructions="x").dataset_id
    entry = opper.datasets.create_entry(dataset_id=dataset_id, input="a", output="b")
    answer = opper.call(name="private", instructions="x", input="y", model="fake/p")
    theirs = Opper(http_bearer=stack.new_key(), server_url=stack.v2)
    for attempt in (
        lambda: theirs.datasets.create_entry(dataset_id=dataset_id, input="x", output="y"),
        lambda: theirs.datasets.list_entries(dataset_id=dataset_id),
        lambda: theirs.datasets.get_entry(dataset_id=dataset_id, entry_id=entry.id),
        lambda: theirs.datasets.entries.update(dataset_id=dataset_id, entry_id=entry.id, comment="x"),
        lambda: theirs.datasets.delete_entry(dataset_id=dataset_id, entry_id=entry.id),
        lambda: theirs.datasets.query_entries(dataset_id=dataset_id, query="a"),
        lambda: theirs.spans.save_examples(span_id=answer.span_id),
        lambda: theirs.spans.submit_feedback(span_id=answer.span_id, score=1.0),
    ):
        with pytest.raises(errors.NotFoundError):
            attempt()
    assert opper.datasets.list_entries(dataset_id=dataset_id).meta.total_count == 1


def test_calls_get_the_most_relevant_dataset_examples(opper, fake_provider):
    function = opper.functions.create(name="topics", instructions="Name the topic.", model="fake/topics")
    for topic, questions in TOPICS.items():
        for question in questions:
            opper.datasets.create_entry(dataset_id=function.dataset_id, input=question, output=f"TOPIC-{topic}")
    question = f"How long should I bake bread or roast chicken in the oven? {uuid.uuid4().hex}"
    opper.functions.call(function_id=function.id, input=question)
    system = prompt_for(fake_provider, question)["system"]
    assert system.count("TOPIC-cooking") == 3 and "TOPIC-finance" not in system and "TOPIC-astronomy" not in system

    opper.functions.update(function_id=function.id, configuration={"invocation.few_shot.count": 0})
    question = f"How do I bake bread? {uuid.uuid4().hex}"
    opper.functions.call(function_id=function.id, input=question)
    assert "TOPIC-" not in prompt_for(fake_provider, question)["system"]
