import pytest

from app.engine import structured
from app.engine.structured import (
    check_schema,
    may_be_object,
    parse_json_answer,
    supports_native,
    validate_instance,
)
from app.errors import BadRequest, StructuredOutputError

PATTERN = r"^The answer to the question is [A-Za-z0-9\s]+$"


def test_check_schema_accepts_pydantic_style_defs():
    check_schema(
        {
            "$defs": {"Item": {"type": "object", "properties": {"sku": {"type": "string"}}}},
            "type": "object",
            "properties": {"items": {"type": "array", "items": {"$ref": "#/$defs/Item"}}},
        },
        "output_schema",
    )


@pytest.mark.parametrize(
    ("schema", "reason"),
    [
        (
            {"type": "objekt"},
            "not a valid JSON Schema at $.type: 'objekt' is not valid under any of the given schemas",
        ),
        ({"properties": {"a": {"minLength": -1}}}, "not a valid JSON Schema at $.properties.a.minLength"),
        (
            {"properties": {"a": {"$ref": "#/$defs/Missing"}}},
            "`$ref` '#/$defs/Missing' does not point into the schema",
        ),
        ([1, 2], "must be a JSON Schema object"),
    ],
)
def test_check_schema_names_field_and_reason(schema, reason):
    with pytest.raises(BadRequest) as caught:
        check_schema(schema, "output_schema")
    assert caught.value.field_name == "output_schema"
    assert caught.value.message.startswith(reason)
    assert caught.value.detail.startswith("output_schema: ")


def test_validation_errors_have_json_paths():
    schema = {
        "type": "object",
        "properties": {"items": {"type": "array", "items": {"type": "object", "required": ["sku"]}}},
        "required": ["items", "total"],
    }
    assert validate_instance({"items": [{"sku": "a"}, {}]}, schema) == [
        "$: 'total' is a required property",
        "$.items[1]: 'sku' is a required property",
    ]
    assert validate_instance({"items": [], "total": 1}, schema) == []


@pytest.mark.parametrize(
    ("fmt", "bad", "good"),
    [
        ("date-time", "yesterday", "2025-01-02T03:04:05Z"),
        ("email", "not-an-email", "ada@example.com"),
        ("uri", "no scheme", "https://example.com/a"),
        ("uuid", "1234", "3c90c3cc-0d44-4b50-8888-8dd25736052a"),
    ],
)
def test_formats_are_checked(fmt, bad, good):
    schema = {"type": "object", "properties": {"v": {"type": "string", "format": fmt}}}
    assert validate_instance({"v": bad}, schema) == [f"$.v: '{bad}' is not a '{fmt}'"]
    assert validate_instance({"v": good}, schema) == []


def test_pattern_is_enforced():
    schema = {"type": "object", "properties": {"answer": {"type": "string", "pattern": PATTERN}}}
    assert validate_instance({"answer": "The answer to the question is 42"}, schema) == []
    assert validate_instance({"answer": "It is 42!"}, schema) == [
        f"$.answer: 'It is 42!' does not match the regular expression `{PATTERN}`"
    ]


def test_any_of_null_with_defs_ref_names_the_closest_branch():
    schema = {
        "$defs": {"Address": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
        "type": "object",
        "properties": {"address": {"anyOf": [{"$ref": "#/$defs/Address"}, {"type": "null"}]}},
    }
    assert validate_instance({"address": None}, schema) == []
    assert validate_instance({"address": {"city": "Oslo"}}, schema) == []
    [error] = validate_instance({"address": {"city": 7}}, schema)
    assert error.startswith("$.address: {'city': 7} is not valid under any of the given schemas")
    assert "(closest: $.address.city: 7 is not of type 'string')" in error


def test_unresolvable_reference_is_a_schema_fault():
    with pytest.raises(BadRequest) as caught:
        validate_instance({"a": 1}, {"properties": {"a": {"$ref": "https://example.invalid/s.json"}}})
    assert caught.value.field_name == "output_schema"


def test_validators_are_compiled_once_per_schema_whatever_the_key_order():
    structured._compiled.cache_clear()
    validate_instance({"a": 1}, {"type": "object", "properties": {"a": {"type": "integer"}}})
    validate_instance({"a": 2}, {"properties": {"a": {"type": "integer"}}, "type": "object"})
    info = structured._compiled.cache_info()
    assert (info.misses, info.hits) == (1, 1)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ('{"a": 1}', {"a": 1}),
        ('```json\n{"a": [1, 2]}\n```', {"a": [1, 2]}),
        ("Sure! Here it is:\n```\n[1, 2]\n```\nAnything else?", [1, 2]),
        ('The result is {"a": {"b": "}"}} as requested.', {"a": {"b": "}"}}),
        ('Note [draft]: {"a": 1}', {"a": 1}),
        ("42", 42),
    ],
)
def test_parse_json_answer_tolerates_fences_and_prose(text, value):
    assert parse_json_answer(text) == value


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "the answer is empty"),
        ("I cannot answer that.", "the answer is not valid JSON: Expecting value: line 1 column 1 (char 0)"),
        (
            'Here: {"a": 1,}',
            "the answer is not valid JSON: Expecting property name enclosed in double quotes: line 1",
        ),
        ('```json\n{"a": \n```', "the answer is not valid JSON: Expecting value"),
    ],
)
def test_parse_json_answer_explains_failures(text, reason):
    with pytest.raises(StructuredOutputError) as caught:
        parse_json_answer(text)
    assert caught.value.message.startswith(reason)
    assert caught.value.errors == [f"$: {caught.value.message}"]
    assert caught.value.raw_output == text


def test_supports_native_needs_a_root_object():
    assert supports_native({"type": "object", "properties": {}})
    assert supports_native({"$defs": {"Out": {"type": "object"}}, "$ref": "#/$defs/Out"})
    assert not supports_native({"type": "array", "items": {"type": "string"}})
    assert not supports_native({"anyOf": [{"type": "object"}, {"type": "null"}]})
    assert not supports_native(None)


def test_may_be_object_decides_json_object_mode():
    assert may_be_object({"type": ["object", "null"]})
    assert may_be_object({"$defs": {"A": {"type": "object"}}, "anyOf": [{"$ref": "#/$defs/A"}, {"type": "null"}]})
    assert may_be_object({"description": "anything goes"})
    assert not may_be_object({"type": "array", "items": {"type": "object"}})
    assert not may_be_object({"anyOf": [{"type": "string"}, {"type": "integer"}]})
    assert not may_be_object({"enum": ["a", "b"]})
    assert not may_be_object(None)


def test_errors_are_ordered_by_numeric_index():
    schema = {"type": "array", "items": {"type": "integer"}}
    instance = [0, 1, "two", 3, 4, 5, 6, 7, 8, 9, "ten"]
    assert validate_instance(instance, schema) == [
        "$[2]: 'two' is not of type 'integer'",
        "$[10]: 'ten' is not of type 'integer'",
    ]
