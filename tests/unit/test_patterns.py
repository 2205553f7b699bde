"""Users' regexes run on RE2: linear time whatever the pattern, the same answers as jsonschema's own."""

from __future__ import annotations

import pytest

from app.engine.patterns import UnsupportedPattern, compiled, search
from app.engine.structured import check_schema, validate_instance
from app.errors import BadRequest

CATASTROPHIC = r"^(a+)+$"  # Python's re needs ~2^n steps for n `a`s and a `!`
HOSTILE_TEXT = "a" * 200 + "!"  # would never finish on a backtracking engine


def test_catastrophic_pattern_is_answered_by_re2_in_every_keyword():
    assert not search(CATASTROPHIC, HOSTILE_TEXT) and search(CATASTROPHIC, "aaaa")
    [error] = validate_instance(HOSTILE_TEXT, {"type": "string", "pattern": CATASTROPHIC})
    assert error.startswith("$: 'aaaa") and error.endswith("does not match the regular expression `^(a+)+$`")
    by_key = {"type": "object", "patternProperties": {CATASTROPHIC: {"type": "integer"}}}
    assert validate_instance({HOSTILE_TEXT: "x", "aaa": "y"}, by_key) == ["$.aaa: 'y' is not of type 'integer'"]
    closed = {**by_key, "additionalProperties": False}
    [error] = validate_instance({HOSTILE_TEXT: 1}, closed)
    assert "not match any of the regexes" in error
    [error] = validate_instance({HOSTILE_TEXT: 1}, {"propertyNames": {"pattern": CATASTROPHIC}})
    assert "does not match the regular expression" in error


@pytest.mark.parametrize(
    ("schema", "good", "bad"),
    [
        ({"type": "string", "pattern": r"^[A-Z]{3}-\d{4}$"}, "ABC-1234", "abc-1234"),
        ({"type": "string", "pattern": "b"}, "abc", "xyz"),  # unanchored, as JSON Schema says
        ({"type": "string", "pattern": r"^\u0041+$"}, "AAA", "aaa"),  # ECMA-262 \uFFFF escapes
        ({"type": "string", "pattern": r"^\\u0041$"}, "\\u0041", "A"),  # an escaped backslash stays literal
        ({"type": "string", "pattern": r"^\p{Lu}"}, "Éa", "éa"),
        ({"propertyNames": {"pattern": "^x_"}}, {"x_a": 1}, {"y": 1}),
        ({"patternProperties": {"^n_": {"type": "number"}}}, {"n_a": 1, "s": "x"}, {"n_a": "1"}),
        (
            {"properties": {"id": {}}, "patternProperties": {"^n_": {}}, "additionalProperties": False},
            {"id": 1, "n_b": 2},
            {"q": 1},
        ),
        ({"type": "string", "format": "regex"}, r"^a+$", r"(a)\1"),
    ],
)
def test_ordinary_patterns_validate_as_before(schema, good, bad):
    check_schema(schema, "output_schema")
    assert validate_instance(good, schema) == []
    assert validate_instance(bad, schema) != []


def test_additional_properties_messages_are_jsonschemas():
    schema = {"properties": {"id": {}}, "patternProperties": {"^n_": {}}, "additionalProperties": False}
    assert validate_instance({"q": 1, "r": 2}, schema) == ["$: 'q', 'r' do not match any of the regexes: '^n_'"]
    closed = {"properties": {"id": {}}, "additionalProperties": False}
    assert validate_instance({"q": 1}, closed) == ["$: Additional properties are not allowed ('q' was unexpected)"]
    typed = {"properties": {"id": {}}, "additionalProperties": {"type": "string"}}
    assert validate_instance({"id": 1, "q": 2}, typed) == ["$.q: 2 is not of type 'string'"]


@pytest.mark.parametrize(
    ("schema", "where", "reason"),
    [
        ({"type": "string", "pattern": r"(a)\1"}, "$.pattern", r"invalid escape sequence: \1"),
        ({"properties": {"a": {"pattern": "(?=x)"}}}, "$.properties.a.pattern", "invalid perl operator"),
        ({"patternProperties": {"(?<!x)y": {}}}, "$.patternProperties", "invalid perl operator"),
        ({"pattern": "[a-"}, "$.pattern", "missing ]"),
    ],
)
def test_patterns_rre2_cannot_run_are_refused_naming_the_field(schema, where, reason):
    with pytest.raises(BadRequest) as caught:
        check_schema(schema, "input_schema")
    detail = caught.value.detail
    assert detail.startswith(f"input_schema: at {where}: the regular expression") and reason in detail
    assert "backreferences and lookaround are not supported" in detail


def test_unevaluated_properties_with_pattern_properties_is_refused():
    # jsonschema evaluates that pair with Python's re internally, out of RE2's reach
    with pytest.raises(BadRequest, match="unevaluatedProperties"):
        check_schema({"patternProperties": {"^a": {}}, "unevaluatedProperties": False}, "output_schema")
    check_schema({"properties": {"a": {}}, "unevaluatedProperties": False}, "output_schema")


def test_an_unchecked_schema_with_an_unsupported_pattern_is_a_400_on_the_schema_field():
    with pytest.raises(BadRequest) as caught:
        validate_instance("x", {"pattern": r"(x)\1"}, schema_field="input_schema")
    assert caught.value.detail.startswith("input_schema: the regular expression")


def test_compiled_programs_are_kept_and_failures_are_not():
    assert compiled("^k$") is compiled("^k$")
    for _ in range(2):
        with pytest.raises(UnsupportedPattern):
            compiled(r"(k)\1")
