"""Values no store can keep (NUL, lone surrogates, NaN, Infinity, 1e999, a 64-bit overflowing offset)
get a 400 naming the field on every route, against PostgreSQL (which refuses them where SQLite does not),
and the keep-alive connection stays usable."""

from __future__ import annotations

import json

import pytest

NUL = "a\u0000b"
NAN = {"x": float("nan")}  # json.dumps writes NaN; so do many clients


def body(value: object) -> bytes:
    """JSON as a lax client writes it: NaN/Infinity bare, lone surrogates as escapes."""
    return json.dumps(value).encode()


def raw(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


@pytest.fixture
def made(stack, key):
    """A function and a span in the key's project, for routes under them."""
    with stack.client(key) as client:
        function = client.post("/functions", json={"name": "target", "instructions": "x"}).json()
        span = client.post("/spans", json={"name": "target"}).json()
    return {"function": function["id"], "span": span["id"]}


BODIES = [
    ("/functions", body({"name": NUL, "instructions": "x"}), "name", "NUL character"),
    ("/functions", body({"name": "f", "instructions": "x", "description": "\ud800"}), "description", "surrogate"),
    ("/models/aliases", body({"name": NUL, "fallback_models": ["fake/a"]}), "name", "NUL character"),
    ("/models/custom", body({"name": NUL, "identifier": "openai/m", "api_key": "k"}), "name", "NUL character"),
    ("/spans", body({"name": NUL}), "name", "NUL character"),
    ("/spans", body({"name": "s", "meta": NAN}), "meta.x", "NaN is not a JSON number"),
    ("/spans", raw('{"name": "s", "meta": {"x": 1e999}}'), "meta.x", "1e999 is not a JSON number"),
    ("/spans", raw('{"name": "s", "meta": {"x": -Infinity}}'), "meta.x", "-Infinity is not a JSON number"),
    ("/spans/{span}/metrics", body({"dimension": NUL, "value": 1}), "dimension", "NUL character"),
    ("/call", body({"name": NUL, "input": "x"}), "name", "NUL character"),
    ("/call", body({"name": "c", "input": {"deep": [NUL]}}), "input.deep[0]", "NUL character"),
    ("/call", raw('{"name": "c", "input": "\\ud800"}'), "input", "lone UTF-16 surrogate (\\ud800)"),
    ("/call", raw('{"name": "c", "input": "\ud800"}'), "input", "lone UTF-16 surrogate (\\ud800)"),  # raw bytes
    ("/call", raw('{"name": "c", "input": NaN}'), "input", "NaN is not a JSON number"),
    ("/call", raw('{"name": "c", "input": {"v": 1e999}}'), "input.v", "1e999 is not a JSON number"),
    ("/call/stream", body({"name": "c", "input": NUL}), "input", "NUL character"),
    ("/jobs", body({"name": "c", "input": {"k\u0000": 1}}), "input (a key)", "NUL character"),
    ("/functions/{function}/call", body({"input": NUL}), "input", "NUL character"),
    (
        "/batches",
        body({"function": {"name": "b"}, "items": [{"custom_id": NUL, "input": 1}]}),
        "items[0].custom_id",
        "NUL",
    ),
]


@pytest.mark.parametrize(("path", "content", "field", "reason"), BODIES)
def test_unstorable_body_values_are_400_naming_the_field(stack, key, made, path, content, field, reason):
    with stack.client(key) as client:
        response = client.post(path.format(**made), content=content, headers={"content-type": "application/json"})
        assert response.status_code == 400, response.text
        assert response.json()["type"] == "BadRequestError"
        assert response.json()["detail"].startswith(f"{field}: ") and reason in response.json()["detail"]
        assert client.get("/functions").status_code == 200  # the same keep-alive connection still serves
        assert [f["name"] for f in client.get("/functions").json()["data"]] == ["target"]  # nothing written


def test_a_jsonl_batch_line_with_a_nul_is_an_invalid_item(stack, key):
    lines = (
        b'{"custom_id": "ok", "input": 1}\n{"custom_id": "a\\u0000b", "input": 2}\n{"custom_id": "n", "input": NaN}\n'
    )
    files = {"batch": (None, '{"function": {"name": "jsonl"}}', "application/json"), "file": ("i.jsonl", lines)}
    with stack.client(key) as client:
        refused = client.post("/batches", files=files)
        spec_nul = client.post("/batches", files={**files, "batch": (None, '{"function": {"name": "x\\u0000"}}')})
    assert refused.status_code == 400, refused.text
    invalid = {item["line"]: item["reason"] for item in refused.json()["detail"]["invalid_items"]}
    assert invalid == {
        2: "custom_id: contains a NUL character (\\u0000), which cannot be stored",
        3: "input: NaN is not a JSON number (JSON has no NaN or Infinity)",
    }
    assert spec_nul.status_code == 400 and spec_nul.json()["detail"].startswith("batch.function.name: contains a NUL")


def test_offset_beyond_64_bits_is_400_on_every_list_route(stack, key, made):
    with stack.client(key) as client:
        spec = client.get(stack.url + "/openapi.json").json()
        lists = [
            path.removeprefix("/v2").format(function_id=made["function"], span_id=made["span"], **_ids(made))
            for path, operations in spec["paths"].items()
            if any(p["name"] == "offset" for p in operations.get("get", {}).get("parameters", []))
        ]
        assert len(lists) >= 10
        for path in lists:
            too_far = client.get(path, params={"offset": str(2**63)})
            assert too_far.status_code == 400, (path, too_far.text)
            assert too_far.json()["detail"] == f"offset: must be from 0 to {2**63 - 1}"
            assert client.get(path, params={"offset": str(2**63 - 1)}).status_code in (200, 404), path


def _ids(made: dict[str, str]) -> dict[str, str]:
    """Ids for list routes under resources the test did not make: they answer 404, never 500."""
    unknown = "00000000-0000-4000-8000-000000000000"
    return {"dataset_id": unknown, "job_id": unknown, "batch_id": unknown}


@pytest.mark.parametrize(
    ("url", "field"),
    [
        ("/functions/by-name/a%00b", "path"),
        ("/models/aliases/by-name/a%00b", "path"),
        ("/functions?name=a%00b", "name"),
        ("/traces?name=%00", "name"),
        ("/jobs?name=a%00", "name"),
    ],
)
def test_a_nul_in_the_path_or_query_is_400_naming_it(stack, key, url, field):
    with stack.client(key) as client:
        response = client.get(url)
    assert response.status_code == 400, response.text
    assert response.json()["detail"] == f"{field}: contains a NUL character (\\u0000), which cannot be stored"


def test_a_span_score_beyond_its_32_bit_column_is_422_naming_it(stack, key):
    with stack.client(key) as client:
        too_big = client.post("/spans", json={"name": "s", "score": 2**40})
        fits = client.post("/spans", json={"name": "s", "score": 2**31 - 1})
    assert too_big.status_code == 422 and too_big.json()["message"].startswith("score: ")
    assert fits.status_code in (200, 201), fits.text


@pytest.mark.parametrize(
    ("method", "url", "json_body", "field"),
    [
        ("GET", "/jobs?created_after=0001-01-01T00:00:00%2B14:00", None, "created_after"),
        ("GET", "/analytics/usage?from_date=0001-01-01T00:00:00%2B14:00", None, "from_date"),
        ("POST", "/spans", {"name": "s", "start_time": "0001-01-01T00:00:00+14:00"}, "start_time"),
        ("GET", "/jobs/00000000-0000-4000-8000-000000000000?wait=nan", None, "wait"),
        ("GET", "/jobs/00000000-0000-4000-8000-000000000000?wait=inf", None, "wait"),
    ],
)
def test_datetimes_before_year_1_in_utc_and_non_finite_waits_are_422(stack, key, method, url, json_body, field):
    with stack.client(key) as client:
        response = client.request(method, url, json=json_body)
        assert response.status_code == 422, response.text
        assert field in response.json()["message"]
        assert client.get("/functions").status_code == 200  # the connection still serves


def test_a_large_body_is_checked_off_the_event_loop_with_the_same_answer(stack, key):
    content = body({"name": "big", "input": {"pad": "x" * 400_000, "v": NUL}})  # above 256 KiB
    with stack.client(key) as client:
        response = client.post("/call", content=content, headers={"content-type": "application/json"})
    assert response.status_code == 400 and response.json()["detail"].startswith("input.v: contains a NUL")
