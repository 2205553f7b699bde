"""The batch client's NDJSON reader: lines split on `\\n` only, whatever the chunking."""

from __future__ import annotations

import json

from app.batch_client import _ndjson_lines

LINES = [
    json.dumps({"custom_id": "a", "status": "succeeded", "text": "line\u2028separator"}, ensure_ascii=False),
    json.dumps({"custom_id": "b", "status": "failed", "text": "carriage\rreturn"}, ensure_ascii=False),
    json.dumps({"custom_id": "c", "status": "succeeded"}),
]


def test_lines_survive_any_chunking_and_unicode_line_separators():
    body = ("\n".join(LINES) + "\n\n").encode()
    for size in (1, 3, 7, 64, len(body)):
        chunks = [body[i : i + size] for i in range(0, len(body), size)]
        assert [line.decode() for line in _ndjson_lines(iter(chunks))] == LINES


def test_a_last_line_without_newline_is_kept():
    assert list(_ndjson_lines(iter([b'{"a": 1}\n{"b"', b": 2}"]))) == [b'{"a": 1}', b'{"b": 2}']
