"""Batch intake without I/O: reading JSONL lines, checking items, and parsing multipart uploads in
chunks of any size."""

from __future__ import annotations

import hashlib
import io
import json

import pytest

from app.errors import BadRequest
from app.services.batch_intake import MAX_LINE_BYTES, InvalidItem, ItemChecker, jsonl_values
from app.services.batch_upload import MultipartReader, boundary_of
from app.store.batch_records import NewItem

SCHEMA = {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}


def lines(*rows: str | bytes) -> io.BytesIO:
    return io.BytesIO(b"".join((r if isinstance(r, bytes) else r.encode()) + b"\n" for r in rows))


def test_jsonl_lines_are_numbered_from_one_and_blank_lines_are_skipped():
    data = lines('\ufeff{"custom_id": "a", "input": {"q": "x"}}', "", "   ", "{oops", '{"custom_id": "b", "input": 1}')
    found = list(jsonl_values(data))
    assert [number for number, _ in found] == [1, 4, 5]
    assert found[0][1] == {"custom_id": "a", "input": {"q": "x"}}  # the byte order mark is dropped
    assert "not valid JSON" in found[1][1].reason


def test_a_line_longer_than_the_limit_is_reported_and_the_next_line_still_read():
    long = b'{"custom_id": "a", "input": "' + b"x" * (MAX_LINE_BYTES + 10) + b'"}'
    found = list(jsonl_values(lines(long, '{"custom_id": "b", "input": 1}')))
    assert found[0][0] == 1 and "longer than" in found[0][1].reason
    assert found[1] == (2, {"custom_id": "b", "input": 1})


def test_items_are_checked_with_a_reason_each():
    checker = ItemChecker(SCHEMA, {"team": "x"})
    values = [
        (1, {"custom_id": "a", "input": {"q": "ok"}, "tags": {"k": "v"}}),
        (2, ["not", "an", "object"]),
        (3, {"input": {"q": "no id"}}),
        (4, {"custom_id": "a", "input": {"q": "again"}}),
        (5, {"custom_id": "c", "input": {"q": 3}}),
        (6, {"custom_id": "d"}),
        (7, {"custom_id": "e", "input": {"q": "x"}, "body": {}}),
        (8, {"custom_id": "f", "input": {"q": "x"}, "tags": {"n": 1}}),
        (9, {"custom_id": "x" * 256, "input": {"q": "x"}}),
    ]
    results = list(checker.checked(values))
    assert results[0] == NewItem("a", {"q": "ok"}, {"team": "x", "k": "v"})
    reasons = {r.line: (r.custom_id, r.reason) for r in results if isinstance(r, InvalidItem)}
    assert reasons[2] == (None, "must be a JSON object with custom_id and input")
    assert reasons[3][1].startswith("custom_id: must be a string")
    assert reasons[4] == ("a", "custom_id: 'a' was already used on line 1")
    assert reasons[5][0] == "c" and reasons[5][1].startswith("input: does not match input_schema: $.q:")
    assert reasons[6] == ("d", "input: is required")
    assert reasons[7] == ("e", "body: unknown field; an item has custom_id, input, tags")
    assert reasons[8] == ("f", "tags: must be an object of strings")
    assert 9 in reasons


def test_without_an_input_schema_any_input_is_accepted():
    checker = ItemChecker(None, {})
    assert checker.check(1, {"custom_id": "a", "input": [1, 2]}) == NewItem("a", [1, 2], {})


def multipart_body(boundary: str, parts: list[tuple[str, bytes]]) -> bytes:
    out = b"preamble to ignore\r\n"
    for name, content in parts:
        filename = '; filename="items.jsonl"' if name == "file" else ""
        out += f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"{filename}\r\n'.encode()
        out += b"Content-Type: application/octet-stream\r\n\r\n" + content + b"\r\n"
    return out + f"--{boundary}--\r\nepilogue".encode()


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 7, 64, 100_000])
def test_multipart_parts_survive_any_chunking(chunk_size):
    boundary = "----bNd42"
    spec = json.dumps({"function_id": "f"}).encode()
    # Content that nearly contains the delimiter must not end the part early.
    items = b'{"custom_id": "a", "input": "--bNd4"}\n\r\n--bNd\n{"custom_id": "b", "input": 2}\n'
    body = multipart_body(boundary, [("batch", spec), ("file", items)])
    reader = MultipartReader(boundary_of(f'multipart/form-data; boundary="{boundary}"'))
    for start in range(0, len(body), chunk_size):
        reader.feed(body[start : start + chunk_size])
    upload = reader.finish()
    assert upload.spec == spec
    assert upload.file.read() == items
    assert upload.file_sha256 == hashlib.sha256(items).hexdigest()


def test_multipart_errors_name_what_is_wrong():
    boundary = "xyz"
    reader = MultipartReader(boundary.encode())
    reader.feed(multipart_body(boundary, [("file", b"{}\n")]))
    with pytest.raises(BadRequest) as missing:
        reader.finish()
    assert missing.value.detail.startswith("batch: is missing")

    reader = MultipartReader(boundary.encode())
    with pytest.raises(BadRequest) as unknown:
        reader.feed(multipart_body(boundary, [("items", b"[]")]))
    assert "unexpected part 'items'" in unknown.value.message

    reader = MultipartReader(boundary.encode())
    reader.feed(multipart_body(boundary, [("batch", b"{}"), ("file", b"")])[:-20])
    with pytest.raises(BadRequest) as truncated:
        reader.finish()
    assert "closing boundary" in truncated.value.message

    with pytest.raises(BadRequest):
        boundary_of("multipart/form-data")
