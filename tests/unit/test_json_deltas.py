"""The incremental JSON → (json_path, scalar) parser behind structured streams."""

import json

import pytest

from app.services.json_deltas import JsonDeltaParser, PathDelta, assemble, parse_path

VALUE = {
    "people": [
        {"name": 'Jo"hn\\ é 😀\n', "age": 42, "ok": True, "nothing": None, "empty": ""},
        {"name": "Bea", "scores": [1.5, -3e2, 0]},
    ],
    "a key": {"nested.dot": "x"},
    "tags": [],
    "count": 7,
}


def run(text: str, piece: int, **kw) -> list[PathDelta]:
    parser = JsonDeltaParser(**kw)
    deltas = []
    for i in range(0, len(text), piece):
        deltas += parser.feed(text[i : i + piece])
    return deltas + parser.close()


@pytest.mark.parametrize("piece", [1, 2, 3, 5, 16, 1000])
@pytest.mark.parametrize("ascii_only", [True, False])
def test_any_split_reassembles_to_the_value(piece, ascii_only):
    text = json.dumps(VALUE, ensure_ascii=ascii_only, indent=2 if piece == 5 else None)
    deltas = run(text, piece)
    expected = {**VALUE}
    del expected["tags"]  # empty containers carry no scalar, so they are not announced
    assert assemble([(d.path, d.value) for d in deltas]) == expected


def test_paths_and_values():
    deltas = run('{"people": [{"name": "Ann", "age": 30}], "ok": false, "x y": null}', 1000)
    assert deltas == [
        PathDelta("people[0].name", "Ann"),
        PathDelta("people[0].age", 30),
        PathDelta("ok", False),
        PathDelta('["x y"]', None),
    ]


def test_strings_stream_in_pieces_as_they_arrive():
    parser = JsonDeltaParser()
    assert parser.feed('{"story": "Once up') == [PathDelta("story", "Once up")]
    assert parser.feed("on a ti") == [PathDelta("story", "on a ti")]
    assert parser.feed('me", "n": 1') == [PathDelta("story", "me")]  # the number may go on
    assert parser.feed("2}") == [PathDelta("n", 12)]


def test_escapes_split_across_pieces():
    text = '{"s": "a\\u00e9\\ud83d\\ude00\\n\\"b"}'
    assert assemble([(d.path, d.value) for d in run(text, 1)]) == {"s": 'aé😀\n"b'}


def test_empty_string_is_announced_once():
    assert run('{"a": ""}', 1) == [PathDelta("a", "")]


def test_prose_and_fence_around_the_json_are_skipped():
    text = 'Sure! Here it is:\n```json\n{"a": [1, "two"]}\n```\nAnything else?'
    assert run(text, 4) == [PathDelta("a[0]", 1), PathDelta("a[1]", "two")]


def test_root_scalars_when_prose_is_not_skipped():
    assert run("42", 1, skip_prose=False) == [PathDelta("", 42)]
    assert run('"hi"', 1000, skip_prose=False) == [PathDelta("", "hi")]
    assert run("[true, null]", 1) == [PathDelta("[0]", True), PathDelta("[1]", None)]


def test_invalid_json_stops_the_deltas_and_reset_starts_over():
    parser = JsonDeltaParser()
    assert parser.feed('{"a": 1, "b": tru') == [PathDelta("a", 1)]
    assert parser.feed('x, "c": 3}') == []
    assert parser.broken
    parser.reset()
    assert parser.feed('{"c": 3}') == [PathDelta("c", 3)]


def test_parse_path_inverts_the_format():
    assert parse_path("people[0].name") == ["people", 0, "name"]
    assert parse_path('["a b"][2]["x\\"y"]') == ["a b", 2, 'x"y']
    assert parse_path("") == []
    with pytest.raises(ValueError):
        parse_path("people..name")
