"""Dataset entries, save_examples and feedback over HTTP; few-shot selection against the real store."""

from __future__ import annotations

import asyncio
import json
import uuid

from sqlalchemy import select

from app.engine.task import InvocationConfig, TaskSpec
from app.services.fewshot import select_examples
from app.store.feedback import latest_feedback
from app.store.projects import ProjectRepository
from app.store.tables import Span
from tests.unit.test_fewshot import TOPICS


def new_function(client, name: str = "qa", **fields) -> dict:
    response = client.post("/functions", json={"name": name, "instructions": "Answer.", **fields})
    assert response.status_code == 201, response.text
    return response.json()


def call(client, name: str, text: str) -> dict:
    response = client.post("/call", json={"name": name, "instructions": "Answer.", "input": text, "model": "fake/m"})
    assert response.status_code == 200, response.text
    return response.json()


def test_entry_crud_returns_json_text(client):
    dataset = new_function(client)["dataset_id"]
    made = client.post(
        f"/datasets/{dataset}",
        json={"input": {"q": "2+2", "n": [1, None]}, "output": "4", "expected": 4, "comment": "arith"},
    )
    assert made.status_code == 200, made.text
    entry = made.json()
    assert entry["input"] == '{"n": [1, null], "q": "2+2"}' and json.loads(entry["input"])["n"] == [1, None]
    assert (entry["output"], entry["expected"], entry["comment"]) == ("4", "4", "arith")
    eid = entry["id"]
    assert client.get(f"/datasets/{dataset}/entries/{eid}").json() == entry

    patched = client.patch(f"/datasets/{dataset}/entries/{eid}", json={"output": {"a": 4}, "expected": None}).json()
    assert (patched["input"], patched["output"], patched["expected"]) == (entry["input"], '{"a": 4}', None)
    assert patched["comment"] == "arith"

    null_input = client.post(f"/datasets/{dataset}", json={"input": None, "output": [1]}).json()
    assert (null_input["input"], null_input["output"], null_input["expected"]) == ("null", "[1]", None)
    missing_output = client.post(f"/datasets/{dataset}", json={"input": "x"})
    assert missing_output.status_code == 422 and "output" in str(missing_output.json()["detail"])

    assert client.delete(f"/datasets/{dataset}/entries/{eid}").status_code == 204
    gone = client.get(f"/datasets/{dataset}/entries/{eid}")
    assert gone.status_code == 404 and gone.json()["type"] == "NotFoundError"
    assert client.delete(f"/datasets/{dataset}/entries/{eid}").status_code == 404


def test_list_entries_paging(client):
    dataset = new_function(client)["dataset_id"]
    ids = [client.post(f"/datasets/{dataset}", json={"input": i, "output": i}).json()["id"] for i in range(5)]
    page = client.get(f"/datasets/{dataset}/entries", params={"offset": 1, "limit": 2}).json()
    assert page["meta"]["total_count"] == 5
    assert [e["id"] for e in page["data"]] == [ids[3], ids[2]]  # newest first
    assert client.get(f"/datasets/{dataset}/entries", params={"limit": 1001}).status_code == 400
    assert client.get(f"/datasets/{uuid.uuid4()}/entries").status_code == 404


def test_query_entries_ranks_by_relevance(client):
    dataset = new_function(client)["dataset_id"]
    for topic, questions in TOPICS.items():
        for question in questions:
            client.post(f"/datasets/{dataset}", json={"input": {"question": question}, "output": topic})
    found = client.post(f"/datasets/{dataset}/entries/query", params={"query": "baking bread in the oven"})
    assert found.status_code == 200 and isinstance(found.json(), list)
    assert found.json()[0]["input"] == json.dumps({"question": "What temperature should I bake bread in the oven?"})
    assert {e["output"] for e in found.json()} == {"cooking"} and len(found.json()) == 2  # only matches
    top = client.post(f"/datasets/{dataset}/entries/query", params={"query": "planet savings oven", "limit": 3})
    assert len(top.json()) == 3
    assert client.post(f"/datasets/{dataset}/entries/query", params={"query": "zzz"}).json() == []
    for params, status, field in [
        ({"query": " "}, 400, "query"),
        ({"query": "x", "limit": 0}, 400, "limit"),
        ({}, 422, "query"),
    ]:
        response = client.post(f"/datasets/{dataset}/entries/query", params=params)
        assert response.status_code == status and field in str(response.json()["detail"])


def test_few_shot_selection_from_the_store(stack, key, client):
    function = new_function(client, "topics")
    for topic, questions in TOPICS.items():
        for question in questions:
            client.post(f"/datasets/{function['dataset_id']}", json={"input": {"question": question}, "output": topic})
    project_id = ProjectRepository(stack.db).project_for_key(key).id
    task = TaskSpec(name="topics", input={"question": "Is compound interest good for my retirement savings?"})
    examples = asyncio.run(select_examples(stack.db, project_id, function["id"], task))
    assert len(examples) == 3 and {e.output for e in examples} == {"finance"}
    off = TaskSpec(name="topics", input="savings", config=InvocationConfig(few_shot_count=0))
    assert asyncio.run(select_examples(stack.db, project_id, function["id"], off)) == ()
    other_project = ProjectRepository(stack.db).project_for_key(stack.new_key()).id
    assert asyncio.run(select_examples(stack.db, other_project, function["id"], task)) == ()


def test_save_examples_copies_the_call(stack, key, client):
    answer = call(client, "saver", "Sweden")
    function = client.get("/functions/by-name/saver").json()
    saved = client.post(f"/spans/{answer['span_id']}/save_examples")
    assert saved.status_code == 201, saved.text
    body = saved.json()
    assert body["dataset_id"] == function["dataset_id"]
    assert (body["input"], body["output"]) == ("Sweden", answer["message"])
    again = client.post(f"/spans/{answer['span_id']}/save_examples").json()
    assert again["dataset_entry_id"] == body["dataset_entry_id"]  # one entry per call
    entries = client.get(f"/datasets/{function['dataset_id']}/entries").json()
    assert [e["id"] for e in entries["data"]] == [body["dataset_entry_id"]]

    missing = client.post(f"/spans/{uuid.uuid4()}/save_examples")
    assert missing.status_code == 404 and "span_id" in missing.json()["detail"]


def test_save_examples_refuses_what_is_not_a_successful_call(stack, client):
    failed = client.post("/call", json={"name": "failing", "input": "x", "model": "fake/m?fail=500"})
    assert failed.status_code == 502
    function = client.get("/functions/by-name/failing").json()
    with stack.db.transaction() as session:
        span_id = session.scalar(select(Span.id).where(Span.function_id == function["id"], Span.type == "call"))
    for path in (f"/spans/{span_id}/save_examples", f"/spans/{span_id}/feedback"):
        response = client.post(path, json={"score": 1.0, "save_to_dataset": True})
        assert response.status_code == 400 and "span_id" in response.json()["detail"], response.text
    assert client.post(f"/spans/{span_id}/feedback", json={"score": 1.0}).json()["example_saved"] is False
    assert client.get(f"/datasets/{function['dataset_id']}/entries").json()["meta"]["total_count"] == 0

    answer = call(client, "deleted-later", "x")
    client.delete(f"/functions/{client.get('/functions/by-name/deleted-later').json()['id']}")
    response = client.post(f"/spans/{answer['span_id']}/save_examples")
    assert response.status_code == 400 and "deleted" in response.json()["message"]


def test_a_generation_span_saves_its_call(stack, client):
    answer = call(client, "via-generation", "hello")
    with stack.db.transaction() as session:
        generation = session.scalar(select(Span.id).where(Span.parent_id == answer["span_id"]))
    saved = client.post(f"/spans/{generation}/save_examples").json()
    assert (saved["input"], saved["output"]) == ("hello", answer["message"])


def test_feedback_saves_by_rule(stack, key, client):
    project_id = ProjectRepository(stack.db).project_for_key(key).id
    calls = [call(client, "rated", f"question {i}") for i in range(5)]
    function = client.get("/functions/by-name/rated").json()

    def feedback(span_id, **body):
        response = client.post(f"/spans/{span_id}/feedback", json=body)
        assert response.status_code == 200, response.text
        return response.json()

    positive = feedback(calls[0]["span_id"], score=1.0, comment="great")
    assert positive == {"span_id": calls[0]["span_id"], "score": 1.0, "example_saved": True, "comment": "great"}
    assert feedback(calls[1]["span_id"], score=0.5)["example_saved"] is False
    assert feedback(calls[2]["span_id"], score=0.0, save_to_dataset=True)["example_saved"] is True
    assert feedback(calls[3]["span_id"], score=1.0, save_to_dataset=False)["example_saved"] is False

    client.patch(f"/functions/{function['id']}", json={"configuration": {"feedback.auto_save": False}})
    call(client, "rated", "question 5")  # a /call keeps the function's auto-save setting
    assert client.get(f"/functions/{function['id']}").json()["configuration"] == {"feedback.auto_save": False}
    assert feedback(calls[4]["span_id"], score=1.0)["example_saved"] is False

    entries = client.get(f"/datasets/{function['dataset_id']}/entries").json()["data"]
    assert sorted(e["input"] for e in entries) == ["question 0", "question 2"]
    assert {e["comment"] for e in entries} == {"great", None}

    latest = latest_feedback(stack.db, project_id, calls[0]["span_id"])
    assert (latest.score, latest.comment, latest.example_saved) == (1.0, "great", True)
    feedback(calls[0]["span_id"], score=0.0)
    assert latest_feedback(stack.db, project_id, calls[0]["span_id"]).score == 0.0
    assert latest_feedback(stack.db, project_id, calls[1]["span_id"]).score == 0.5
    assert latest_feedback(stack.db, project_id, str(uuid.uuid4())) is None


def test_feedback_errors(client):
    answer = call(client, "fb-errors", "x")
    for body, status, field in [({"score": 1.5}, 400, "score"), ({"score": -0.1}, 400, "score"), ({}, 422, "score")]:
        response = client.post(f"/spans/{answer['span_id']}/feedback", json=body)
        assert response.status_code == status and field in str(response.json()["detail"])
    missing = client.post(f"/spans/{uuid.uuid4()}/feedback", json={"score": 1.0})
    assert missing.status_code == 404 and missing.json()["type"] == "NotFoundError"


def test_datasets_and_entries_are_isolated_between_projects(stack, client):
    dataset = new_function(client)["dataset_id"]
    entry = client.post(f"/datasets/{dataset}", json={"input": "a", "output": "b"}).json()["id"]
    answer = call(client, "mine", "x")
    with stack.client(stack.new_key()) as theirs:
        for method, path, body in [
            ("POST", f"/datasets/{dataset}", {"input": "x", "output": "y"}),
            ("GET", f"/datasets/{dataset}/entries", None),
            ("GET", f"/datasets/{dataset}/entries/{entry}", None),
            ("PATCH", f"/datasets/{dataset}/entries/{entry}", {"comment": "stolen"}),
            ("DELETE", f"/datasets/{dataset}/entries/{entry}", None),
            ("POST", f"/datasets/{dataset}/entries/query?query=a", None),
            ("POST", f"/spans/{answer['span_id']}/save_examples", None),
            ("POST", f"/spans/{answer['span_id']}/feedback", {"score": 1.0, "save_to_dataset": True}),
        ]:
            response = theirs.request(method, path, json=body)
            assert response.status_code == 404, (method, path, response.text)
        own = new_function(theirs)["dataset_id"]
        assert theirs.get(f"/datasets/{own}/entries/{entry}").status_code == 404  # their dataset, my entry
    assert client.get(f"/datasets/{dataset}/entries/{entry}").json()["comment"] is None
    assert client.get(f"/datasets/{dataset}/entries").json()["meta"]["total_count"] == 1
