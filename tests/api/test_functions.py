"""Functions and revisions over HTTP: status codes, bodies, paging, revisions, calls, isolation."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from app.store.tables import Job, Span
from app.store.tables_functions import Dataset

OUT = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}
IN = {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}


def create(client, name: str, **fields) -> dict:
    response = client.post("/functions", json={"name": name, "instructions": "Answer briefly.", **fields})
    assert response.status_code == 201, response.text
    return response.json()


def test_create_get_and_by_name(stack, key):
    with stack.client(key) as client:
        made = create(
            client,
            "team/sub.fn-v1.2",
            description="demo",
            input_schema=IN,
            output_schema=OUT,
            model={"name": "fake/x", "options": {"temperature": 0.2}},
            configuration={"invocation.few_shot.count": 2},
        )
        assert made["name"] == "team/sub.fn-v1.2" and made["instructions"] == "Answer briefly."
        assert made["description"] == "demo" and made["input_schema"] == IN and made["output_schema"] == OUT
        assert made["model"] == {"name": "fake/x", "options": {"temperature": 0.2}, "extra_headers": None}
        assert made["configuration"] == {"invocation.few_shot.count": 2}
        assert made["observer_enabled"] is True
        uuid.UUID(made["id"]), uuid.UUID(made["revision_id"]), uuid.UUID(made["dataset_id"])

        assert client.get(f"/functions/{made['id']}").json() == made
        assert client.get("/functions/by-name/team/sub.fn-v1.2").json() == made
    with stack.db.transaction() as session:
        assert session.scalar(select(Dataset.id).where(Dataset.function_id == made["id"])) == made["dataset_id"]


def test_by_name_wins_over_id_routes(stack, key):
    with stack.client(key) as client:
        made = create(client, "by-name/revisions")
        assert client.get("/functions/by-name/by-name/revisions").json()["id"] == made["id"]
        missing = client.get("/functions/by-name/nope/revisions")
        assert missing.status_code == 404 and missing.json()["type"] == "NotFoundError"


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"name": "f"}, 422, "instructions"),
        ({"name": "", "instructions": "x"}, 422, "name"),
        ({"name": "f", "instructions": "x", "input_schema": {"type": "nonsense"}}, 400, "input_schema"),
        ({"name": "f", "instructions": "x", "model": "nowhere/m"}, 400, "model"),
        ({"name": "f", "instructions": "x", "model": []}, 400, "model"),
        ({"name": "f", "instructions": "x", "configuration": {"invocation.cache.ttl": -1}}, 400, "cache.ttl"),
        ({"name": "f", "instructions": "x", "configuration": {"feedback.auto_save": "yes"}}, 400, "auto_save"),
    ],
)
def test_create_refuses_bad_definitions(stack, key, body, status, field):
    with stack.client(key) as client:
        response = client.post("/functions", json=body)
        assert response.status_code == status, response.text
        assert field in str(response.json()["detail"])
        assert client.get("/functions").json()["meta"]["total_count"] == 0


def test_duplicate_name_is_409(stack, key):
    with stack.client(key) as client:
        create(client, "dup")
        response = client.post("/functions", json={"name": "dup", "instructions": "other"})
    assert response.status_code == 409
    assert response.json()["type"] == "ConflictError" and "dup" in response.json()["detail"]


def test_list_filter_sort_and_paging(stack, key):
    with stack.client(key) as client:
        for name in ("beta", "alpha", "gamma-x", "delta-x"):
            create(client, name)
        page = client.get("/functions").json()
        assert page["meta"]["total_count"] == 4
        assert [f["name"] for f in page["data"]] == ["delta-x", "gamma-x", "alpha", "beta"]  # newest first
        assert all(f["revision_id"] and f["instructions"] == "Answer briefly." for f in page["data"])
        by_name = client.get("/functions", params={"sort": "name", "offset": 1, "limit": 2}).json()
        assert [f["name"] for f in by_name["data"]] == ["beta", "delta-x"] and by_name["meta"]["total_count"] == 4
        assert [f["name"] for f in client.get("/functions", params={"sort": "-name"}).json()["data"]][0] == "gamma-x"
        assert [f["name"] for f in client.get("/functions", params={"sort": "created_at"}).json()["data"]][0] == "beta"
        filtered = client.get("/functions", params={"name": "-X"}).json()
        assert sorted(f["name"] for f in filtered["data"]) == ["delta-x", "gamma-x"]
        assert filtered["meta"]["total_count"] == 2
        assert client.get("/functions", params={"name": "%"}).json()["meta"]["total_count"] == 0
        for params, field in [({"limit": 0}, "limit"), ({"limit": 1001}, "limit"), ({"sort": "size"}, "sort")]:
            response = client.get("/functions", params=params)
            assert response.status_code == 400 and field in response.json()["detail"]


def test_update_makes_revisions_and_get_by_revision(stack, key):
    with stack.client(key) as client:
        made = create(client, "evolving", description="d1", configuration={"invocation.cache.ttl": 5})
        fid = made["id"]
        same = client.patch(f"/functions/{fid}", json={"description": "d1"}).json()
        assert same["revision_id"] == made["revision_id"]  # nothing changed: no new revision
        second = client.patch(f"/functions/{fid}", json={"instructions": "Second."}).json()
        third = client.patch(
            f"/functions/{fid}", json={"configuration": {"custom": 1}, "model": "fake/m", "description": None}
        ).json()
        assert len({made["revision_id"], second["revision_id"], third["revision_id"]}) == 3
        assert (third["instructions"], third["configuration"], third["model"]) == ("Second.", {"custom": 1}, "fake/m")
        assert third["description"] is None and third["dataset_id"] == made["dataset_id"]
        assert client.get(f"/functions/{fid}").json() == third

        revisions = client.get(f"/functions/{fid}/revisions").json()
        assert revisions["meta"]["total_count"] == 3
        assert [r["id"] for r in revisions["data"]] == [
            third["revision_id"],
            second["revision_id"],
            made["revision_id"],
        ]
        assert revisions["data"][2]["configuration"] == {"invocation.cache.ttl": 5}
        assert revisions["data"][0]["created_at"] and revisions["data"][0]["updated_at"]
        paged = client.get(f"/functions/{fid}/revisions", params={"offset": 1, "limit": 1}).json()
        assert [r["id"] for r in paged["data"]] == [second["revision_id"]]

        first = client.get(f"/functions/{fid}/revisions/{made['revision_id']}").json()
        assert first == {**made, "revision_id": made["revision_id"]}
        missing = client.get(f"/functions/{fid}/revisions/{uuid.uuid4()}")
        assert missing.status_code == 404 and "revision_id" in missing.json()["detail"]


def test_update_errors(stack, key):
    with stack.client(key) as client:
        a = create(client, "a")
        create(client, "b")
        renamed = client.patch(f"/functions/{a['id']}", json={"name": "a/renamed"}).json()
        assert renamed["name"] == "a/renamed" and renamed["revision_id"] == a["revision_id"]
        conflict = client.patch(f"/functions/{a['id']}", json={"name": "b"})
        assert conflict.status_code == 409
        for body, field in [
            ({"instructions": None}, "instructions"),
            ({"output_schema": {"type": 1}}, "output_schema"),
        ]:
            response = client.patch(f"/functions/{a['id']}", json=body)
            assert response.status_code == 400 and field in response.json()["detail"]
        assert client.patch(f"/functions/{uuid.uuid4()}", json={"description": "x"}).status_code == 404


def test_delete(stack, key):
    with stack.client(key) as client:
        made = create(client, "doomed")
        response = client.delete(f"/functions/{made['id']}")
        assert response.status_code == 204
        assert client.get(f"/functions/{made['id']}").status_code == 404
        assert client.get(f"/datasets/{made['dataset_id']}/entries").status_code == 404
        assert client.delete(f"/functions/{made['id']}").status_code == 404
        assert create(client, "doomed")["id"] != made["id"]  # the name is free again


def test_call_route_records_function_revision_and_dataset(stack, key):
    body = {"name": "via-call", "instructions": "One.", "input": "hi", "model": "fake/a"}
    with stack.client(key) as client:
        first = client.post("/call", json=body)
        assert first.status_code == 200, first.text
        function = client.get("/functions/by-name/via-call").json()
        assert function["instructions"] == "One." and function["model"] == "fake/a" and function["dataset_id"]
        client.patch(f"/functions/{function['id']}", json={"description": "kept"})
        client.post("/call", json=body)  # same definition: the description is carried over, no new revision
        assert client.get(f"/functions/{function['id']}/revisions").json()["meta"]["total_count"] == 2
        client.post("/call", json={**body, "instructions": "Two."})
        latest = client.get(f"/functions/{function['id']}").json()
        assert (latest["instructions"], latest["description"]) == ("Two.", "kept")
        assert client.get(f"/functions/{function['id']}/revisions").json()["meta"]["total_count"] == 3


def test_function_call_uses_the_stored_definition(stack, key):
    with stack.client(key) as client:
        made = create(client, "stored", input_schema=IN, output_schema=OUT, model="fake/stored")
        response = client.post(f"/functions/{made['id']}/call", json={"input": {"q": "why?"}, "tags": {"k": "v"}})
        assert response.status_code == 200, response.text
        assert isinstance(response.json()["json_payload"]["answer"], str)
        span_id = response.json()["span_id"]
        bad = client.post(f"/functions/{made['id']}/call", json={"input": {"q": 1}})
        assert bad.status_code == 400 and "input" in bad.json()["detail"]
        missing = client.post(f"/functions/{uuid.uuid4()}/call", json={"input": {"q": "x"}})
        assert missing.status_code == 404 and "function_id" in missing.json()["detail"]
        pinned_missing = client.post(f"/functions/{made['id']}/call/{uuid.uuid4()}", json={"input": {"q": "x"}})
        assert pinned_missing.status_code == 404 and "revision_id" in pinned_missing.json()["detail"]
    with stack.db.transaction() as session:
        span = session.get(Span, span_id)
        job = session.scalars(select(Job).where(Job.span_id == span_id)).one()
    assert (span.name, span.model, span.tags, span.function_id) == ("stored", "fake/stored", {"k": "v"}, made["id"])
    assert job.revision_id == made["revision_id"] == span.revision_id


def test_call_stream_path_is_not_taken_for_a_revision(stack, key):
    with stack.client(key) as client:
        made = create(client, "streamable")
        response = client.post(f"/functions/{made['id']}/call/stream", json={"input": "x"})
    assert "revision" not in response.text


def test_functions_are_isolated_between_projects(stack, key):
    other = stack.new_key()
    with stack.client(key) as mine, stack.client(other) as theirs:
        made = create(mine, "private")
        fid, rid = made["id"], made["revision_id"]
        for method, path, body in [
            ("GET", f"/functions/{fid}", None),
            ("GET", "/functions/by-name/private", None),
            ("PATCH", f"/functions/{fid}", {"description": "stolen"}),
            ("DELETE", f"/functions/{fid}", None),
            ("GET", f"/functions/{fid}/revisions", None),
            ("GET", f"/functions/{fid}/revisions/{rid}", None),
            ("POST", f"/functions/{fid}/call", {"input": "x"}),
            ("POST", f"/functions/{fid}/call/{rid}", {"input": "x"}),
        ]:
            response = theirs.request(method, path, json=body)
            assert response.status_code == 404, (method, path, response.text)
            assert response.json()["type"] == "NotFoundError"
        assert theirs.get("/functions").json() == {"meta": {"total_count": 0}, "data": []}
        create(theirs, "private")  # names are unique per project, not globally
        assert mine.get(f"/functions/{fid}").json() == made
