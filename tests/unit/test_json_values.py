"""`app.json_values.loads`: JSON no store can keep is refused with the path of the offending value."""

from __future__ import annotations

import json

import pytest

from app.engine.structured import parse_json_answer
from app.errors import StructuredOutputError
from app.json_values import UnstorableValue, loads


@pytest.mark.parametrize(
    ("raw", "path", "reason"),
    [
        (rb'{"a": "x\u0000y"}', "a", "NUL character"),
        (rb'{"a": [1, {"b": "\ud800"}]}', "a[1].b", "lone UTF-16 surrogate (\\ud800)"),
        (rb'{"a": "\udc00 alone"}', "a", "lone UTF-16 surrogate (\\udc00)"),
        ('{"raw": "\ud800"}'.encode("utf-8", "surrogatepass"), "raw", "lone UTF-16 surrogate"),
        (rb'{"m": {"x": NaN}}', "m.x", "NaN is not a JSON number"),
        (rb'{"m": [Infinity]}', "m[0]", "Infinity is not a JSON number"),
        (rb'{"m": -Infinity}', "m", "-Infinity is not a JSON number"),
        (rb'{"m": 1e999}', "m", "1e999 is not a JSON number"),
        (rb'{"k\u0000": 1}', "body (a key)", "NUL character"),
        (b"[" + b"1" * 5000 + b"]", "", "a number cannot be read"),
    ],
)
def test_unstorable_values_are_refused_naming_the_path(raw, path, reason):
    with pytest.raises(UnstorableValue) as caught:
        loads(raw)
    assert caught.value.path == path and reason in caught.value.reason


@pytest.mark.parametrize(
    "value",
    [
        {"emoji": "\U0001f600", "accent": "é", "cjk": "漢字", "hangul": "\ud7a3"},  # \ud7a3 is a real character
        {"n": [1.5, -0.0, 1e308, 12345678901234567890], "text": "a literal \\u0000 stays text"},
    ],
)
def test_ordinary_json_passes_escaped_or_not(value):
    for raw in (json.dumps(value).encode(), json.dumps(value, ensure_ascii=False).encode()):
        assert loads(raw) == value


def test_malformed_json_is_still_a_decode_error():
    with pytest.raises(json.JSONDecodeError):
        loads(b'{"a": ')


def test_a_model_answer_with_unstorable_json_is_asked_again():
    for answer in ('{"a": NaN}', 'Here you go: {"a": "x\\u0000"} done'):
        with pytest.raises(StructuredOutputError) as caught:
            parse_json_answer(answer)
        assert caught.value.errors[0].startswith("$.a: ")
