import copy

from app.engine.prompts import NO_INPUT, build_messages, describe_fields, reask_messages
from app.engine.task import Example, TaskSpec
from app.providers.base import Message

INPUT_SCHEMA = {
    "$defs": {
        "Address": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City the customer lives in"},
                "zip": {"type": "string", "pattern": "^[0-9]{5}$"},
            },
            "required": ["city"],
        }
    },
    "type": "object",
    "properties": {
        "question": {"type": "string", "description": "The question to answer"},
        "address": {"anyOf": [{"$ref": "#/$defs/Address"}, {"type": "null"}], "description": "Home"},
        "orders": {"type": "array", "items": {"type": "object", "properties": {"sku": {"type": "string"}}}},
    },
    "required": ["question"],
}
OUTPUT_SCHEMA = {
    "type": "object",
    "properties": {
        "thoughts": {"type": "string", "description": "Step-by-step reasoning"},
        "answer": {"type": "string", "pattern": r"^The answer to the question is [A-Za-z0-9\s]+$"},
        "confidence": {"type": "string", "enum": ["low", "high"], "description": "How sure"},
    },
    "required": ["thoughts", "answer"],
}


def make_task(**overrides) -> TaskSpec:
    fields = dict(
        name="qa",
        instructions="Answer the question.",
        input_schema=INPUT_SCHEMA,
        output_schema=OUTPUT_SCHEMA,
        input={"question": "What is six times seven?", "address": None},
        examples=(Example({"question": "1+1?"}, {"thoughts": "t", "answer": "two"}, comment="own example"),),
    )
    fields.update(overrides)
    return TaskSpec(**fields)


def test_system_prompt_holds_instructions_fields_and_examples_in_order():
    extra = (Example({"question": "2+2?"}, {"thoughts": "u", "answer": "four"}, comment="from the dataset"),)
    system, user = build_messages(make_task(), extra_examples=extra, native_schema=True)

    assert system.role == "system" and user.role == "user"
    text = system.content
    assert text.startswith("Answer the question.")
    # input fields, flattened with paths through the $defs reference
    assert "- `question` (string): The question to answer." in text
    assert "- `address` (object or null, optional): Home." in text
    assert "- `address.city` (string): City the customer lives in." in text
    assert "- `address.zip` (string, optional): Must match the regular expression `^[0-9]{5}$`." in text
    assert "- `orders[].sku` (string, optional)" in text
    # output fields with constraints stated plainly
    assert "- `thoughts` (string): Step-by-step reasoning." in text
    assert r"Must match the regular expression `^The answer to the question is [A-Za-z0-9\s]+$`." in text
    assert '- `confidence` (string, optional): How sure. Must be one of: "low", "high".' in text
    # request examples first, then the dataset's, each with its comment
    own, dataset = text.index("## Example 1: own example"), text.index("## Example 2: from the dataset")
    assert text.index("# Input") < text.index("# Output") < own < dataset
    assert '"answer": "two"' in text[own:dataset] and '"answer": "four"' in text[dataset:]
    assert user.content == '{\n  "question": "What is six times seven?",\n  "address": null\n}'


def test_schema_is_spelled_out_only_when_not_sent_natively():
    native = build_messages(make_task(), native_schema=True)[0].content
    prompted = build_messages(make_task(), native_schema=False)[0].content
    assert '```json\n{\n  "type": "object"' not in native
    assert '```json\n{\n  "type": "object",\n  "properties": {\n    "thoughts"' in prompted
    assert "Answer with only a JSON value matching this schema" in prompted


def test_text_mode_asks_for_plain_text_and_passes_strings_as_is():
    system, user = build_messages(
        TaskSpec(name="t", instructions="Be brief.", input="hello there"), native_schema=False
    )
    assert system.content == "Be brief.\n\n# Output\nAnswer in plain text."
    assert user.content == "hello there"
    assert build_messages(TaskSpec(name="t"), native_schema=False)[1].content == NO_INPUT


def test_json_rendering_is_deterministic_and_keeps_field_order():
    task = make_task(input={"b": 1, "a": [1, {"z": True, "y": None}]})
    first = build_messages(task, native_schema=False)
    assert first == build_messages(copy.deepcopy(task), native_schema=False)
    assert first[1].content.index('"b"') < first[1].content.index('"a"')


def test_building_never_mutates_the_task():
    task = make_task()
    extra = [Example({"question": "q"}, {"answer": "a"})]
    before = copy.deepcopy((task, extra))
    build_messages(task, extra_examples=extra, native_schema=False)
    assert (task, extra) == before


def test_reask_appends_bad_answer_and_errors_without_mutating():
    history = [Message("system", "s"), Message("user", "u")]
    errors = ["$.answer: 5 is not of type 'string'", "$: 'thoughts' is a required property"]
    result = reask_messages(history, '{"answer": 5}', errors)

    assert history == [Message("system", "s"), Message("user", "u")]
    assert isinstance(result, tuple) and result[:2] == tuple(history)
    assert result[2] == Message("assistant", '{"answer": 5}')
    assert result[3].role == "user"
    assert "- $.answer: 5 is not of type 'string'\n- $: 'thoughts' is a required property" in result[3].content
    assert reask_messages(history, "", ["$: the answer is empty"])[2].content == "(empty answer)"


def test_recursive_schema_is_described_once():
    schema = {
        "$defs": {
            "Node": {
                "type": "object",
                "properties": {
                    "label": {"type": "string"},
                    "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}},
                    "parent": {"anyOf": [{"$ref": "#/$defs/Node"}, {"type": "null"}]},
                },
            }
        },
        "$ref": "#/$defs/Node",
    }
    paths = [(f.path, f.type, f.description) for f in describe_fields(schema)]
    assert paths == [
        ("label", "string", None),
        ("children", "array of object", None),
        ("parent", "object or null", "Same shape as the whole value."),
    ]


def test_scalar_root_schema_is_described_as_the_whole_value():
    fields = describe_fields({"type": "integer", "description": "A count", "minimum": 0})
    assert [f.render() for f in fields] == ["- `(the whole value)` (integer): A count. Minimum 0."]
