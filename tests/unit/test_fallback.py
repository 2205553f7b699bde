"""The bounded loops, driven through `complete_task` with scripted providers (no network, no sleeping)."""

import asyncio
import json

import pytest

from app.engine.cost import PriceTable
from app.engine.deps import EngineDeps
from app.engine.executor import complete_task
from app.engine.task import InvocationConfig, ModelSpec, TaskSpec
from app.errors import (
    BadRequest,
    FailedAttempt,
    ProviderRateLimited,
    ProviderServerError,
    ProviderTimeout,
    TaskFailed,
)
from app.providers.base import Usage
from tests.unit.scripted_provider import DictResolver, RecordingSleep, ScriptedProvider, TickingClock

PATTERN = r"^The answer to the question is [A-Za-z0-9\s]+$"
OUTPUT_SCHEMA = {
    "type": "object",
    "properties": {"thoughts": {"type": "string"}, "answer": {"type": "string", "pattern": PATTERN}},
    "required": ["thoughts", "answer"],
}
GOOD = '{"thoughts": "6 x 7", "answer": "The answer to the question is 42"}'
# openai/gpt-4o-mini list price: $0.15 in / $0.60 out per million tokens; each scripted answer
# uses 100 input and 20 output tokens.
ONE_ATTEMPT_COST = (100 * 0.15 + 20 * 0.6) / 1_000_000


def task(models=("openai/gpt-4o-mini",), schema=OUTPUT_SCHEMA, max_attempts=3, **kw) -> TaskSpec:
    return TaskSpec(
        name="qa",
        instructions="Answer.",
        output_schema=schema,
        input={"question": "6 x 7?"},
        models=tuple(m if isinstance(m, ModelSpec) else ModelSpec(m) for m in models),
        config=InvocationConfig(max_attempts=max_attempts),
        **kw,
    )


def run(t: TaskSpec, providers: dict, sleep=None, fee=0.0, **deps):
    engine = EngineDeps(
        resolver=DictResolver(providers),
        prices=PriceTable.from_path(None),
        platform_fee_rate=fee,
        sleep=sleep or RecordingSleep(),
        clock=TickingClock(),
        **deps,
    )
    return asyncio.run(complete_task(t, engine, cache_scope="p1"))


def test_structured_success_on_first_attempt():
    provider = ScriptedProvider([GOOD])
    result = run(task(), {"openai": provider}, fee=0.1)

    assert result.json_payload == json.loads(GOOD) and result.message is None
    assert result.model == "openai/gpt-4o-mini" and not result.cached
    assert result.usage == Usage(100, 20)
    assert result.cost.generation == pytest.approx(ONE_ATTEMPT_COST)
    assert result.cost.platform == pytest.approx(ONE_ATTEMPT_COST * 0.1)
    [attempt] = result.attempts
    assert (attempt.attempt, attempt.succeeded, attempt.output_text) == (1, True, GOOD)
    assert attempt.started_at < attempt.ended_at and result.started_at < result.ended_at
    [request] = provider.requests
    assert request.model == "gpt-4o-mini"
    assert request.json_schema == OUTPUT_SCHEMA and request.json_mode is False  # root object: native
    assert [m.role for m in request.messages] == ["system", "user"]


def test_invalid_json_then_valid_sums_usage_and_cost_of_both_attempts():
    provider = ScriptedProvider(["Sure, the answer is 42", GOOD])
    result = run(task(), {"openai": provider})

    assert result.json_payload["answer"] == "The answer to the question is 42"
    assert [(a.attempt, a.error_type) for a in result.attempts] == [(1, "StructuredOutputError"), (2, None)]
    assert result.attempts[0].error_message.startswith("the answer is not valid JSON: Expecting value")
    assert result.usage == Usage(200, 40)
    assert result.cost.generation == pytest.approx(2 * ONE_ATTEMPT_COST)
    assert result.cost == result.attempts[0].cost + result.attempts[1].cost
    retry = provider.requests[1].messages
    assert [m.role for m in retry] == ["system", "user", "assistant", "user"]
    assert retry[2].content == "Sure, the answer is 42"
    assert "- $: the answer is not valid JSON: Expecting value" in retry[3].content


def test_schema_violation_is_reasked_with_a_readable_path():
    provider = ScriptedProvider(['{"thoughts": "t", "answer": "It is 42"}', '{"thoughts": 1}', GOOD])
    result = run(task(), {"openai": provider})

    assert len(result.attempts) == 3 and result.attempts[-1].succeeded
    first_fix = provider.requests[1].messages[-1].content
    assert f"- $.answer: 'It is 42' does not match the regular expression `{PATTERN}`" in first_fix
    second_fix = provider.requests[2].messages[-1].content
    assert "- $: 'answer' is a required property\n- $.thoughts: 1 is not of type 'string'" in second_fix
    # each re-ask extends the conversation rather than starting over
    assert len(provider.requests[2].messages) == 6


def test_any_of_null_with_defs_ref():
    schema = {
        "$defs": {"Address": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
        "type": "object",
        "properties": {"address": {"anyOf": [{"$ref": "#/$defs/Address"}, {"type": "null"}]}},
        "required": ["address"],
    }
    provider = ScriptedProvider(['{"address": {"city": 7}}', '{"address": null}'])
    result = run(task(schema=schema), {"openai": provider})

    assert result.json_payload == {"address": None}
    assert "(closest: $.address.city: 7 is not of type 'string')" in result.attempts[0].error_message


def test_exhausted_attempts_fail_with_every_attempt_named():
    first = ScriptedProvider(["nope", '{"answer": 1}'])
    second = ScriptedProvider(["still no", "[]"], usage=Usage(10, 5))
    with pytest.raises(TaskFailed) as caught:
        run(
            task(models=("openai/gpt-4o-mini", "anthropic/claude-3-5-haiku-latest"), max_attempts=2),
            {"openai": first, "anthropic": second},
        )

    failure = caught.value
    assert [(a.model, a.attempt, a.error_type) for a in failure.attempts] == [
        ("openai/gpt-4o-mini", 1, "StructuredOutputError"),
        ("openai/gpt-4o-mini", 2, "StructuredOutputError"),
        ("anthropic/claude-3-5-haiku-latest", 1, "StructuredOutputError"),
        ("anthropic/claude-3-5-haiku-latest", 2, "StructuredOutputError"),
    ]
    assert failure.attempts[1].message == (
        "the answer does not match the output schema: $: 'thoughts' is a required property; "
        "$.answer: 1 is not of type 'string'"
    )
    assert failure.attempts[3].message.endswith("$: [] is not of type 'object'")
    assert failure.usage == Usage(220, 50)
    assert len(failure.records) == 4 and all(r.error_type for r in failure.records)
    assert failure.detail["attempts"][0] == {
        "model": "openai/gpt-4o-mini",
        "attempt": 1,
        "error_type": "StructuredOutputError",
        "message": failure.attempts[0].message,
    }
    # the second model starts from the original prompt, not the first model's conversation
    assert len(second.requests[0].messages) == 2


def test_server_error_falls_back_to_the_next_model_at_once():
    down = ScriptedProvider([ProviderServerError("upstream 503", http_status=503)])
    backup = ScriptedProvider([GOOD])
    sleep = RecordingSleep()
    result = run(
        task(models=("openai/gpt-4o", "anthropic/claude-sonnet-4-0")),
        {"openai": down, "anthropic": backup},
        sleep=sleep,
    )

    assert result.model == "anthropic/claude-sonnet-4-0"
    assert [(a.model, a.error_type) for a in result.attempts] == [
        ("openai/gpt-4o", "ProviderServerError"),
        ("anthropic/claude-sonnet-4-0", None),
    ]
    assert result.attempts[0].error_message == "upstream 503" and result.attempts[0].usage == Usage()
    assert len(down.requests) == 1 and sleep.waits == []
    assert result.cost.generation == pytest.approx((100 * 3.0 + 20 * 15.0) / 1_000_000)


def test_short_rate_limit_is_waited_out_on_the_same_model_without_spending_attempts():
    provider = ScriptedProvider([ProviderRateLimited("slow down", retry_after=2.5), GOOD])
    sleep = RecordingSleep()
    result = run(task(max_attempts=1), {"openai": provider}, sleep=sleep)

    assert sleep.waits == [2.5]
    assert [(a.attempt, a.error_type) for a in result.attempts] == [(1, "ProviderRateLimited"), (2, None)]
    assert result.usage == Usage(100, 20)


def test_long_rate_limit_moves_on_to_the_next_model():
    limited = ScriptedProvider([ProviderRateLimited("quota", retry_after=3600)])
    backup = ScriptedProvider([GOOD])
    sleep = RecordingSleep()
    result = run(task(models=("openai/gpt-4o-mini", "fake/echo")), {"openai": limited, "fake": backup}, sleep=sleep)

    assert sleep.waits == [] and result.model == "fake/echo"
    assert result.attempts[0].error_type == "ProviderRateLimited"


def test_rate_limit_retries_are_bounded():
    limited = ScriptedProvider([ProviderRateLimited("busy", retry_after=1)] * 3)
    backup = ScriptedProvider([ProviderTimeout("read timeout")])
    sleep = RecordingSleep()
    with pytest.raises(TaskFailed) as caught:
        run(
            task(models=("openai/gpt-4o-mini", "fake/echo")),
            {"openai": limited, "fake": backup},
            sleep=sleep,
            rate_limit_retries=2,
        )

    assert sleep.waits == [1, 1]
    assert caught.value.attempts == [
        FailedAttempt("openai/gpt-4o-mini", 1, "ProviderRateLimited", "busy"),
        FailedAttempt("openai/gpt-4o-mini", 2, "ProviderRateLimited", "busy"),
        FailedAttempt("openai/gpt-4o-mini", 3, "ProviderRateLimited", "busy"),
        FailedAttempt("fake/echo", 1, "ProviderTimeout", "read timeout"),
    ]
    assert caught.value.usage == Usage()


def test_text_mode_returns_the_message():
    provider = ScriptedProvider(["Forty-two."])
    model = ModelSpec("openai/gpt-4o-mini", {"temperature": 0.2}, {"X-Trace": "abc"})
    result = run(task(models=(model,), schema=None), {"openai": provider})

    assert (result.message, result.json_payload) == ("Forty-two.", None)
    [request] = provider.requests
    assert request.json_schema is None and request.json_mode is False
    assert request.options == {"temperature": 0.2} and request.extra_headers == {"X-Trace": "abc"}
    assert request.messages[0].content.endswith("# Output\nAnswer in plain text.")


def test_array_schema_is_prompted_without_json_object_mode():
    provider = ScriptedProvider(['```json\n["a", "b"]\n```'])
    result = run(task(schema={"type": "array", "items": {"type": "string"}}), {"openai": provider})

    assert result.json_payload == ["a", "b"]
    [request] = provider.requests
    # JSON-object mode would force an object, so an array could never validate
    assert request.json_schema is None and request.json_mode is False
    assert '```json\n{\n  "type": "array"' in request.messages[0].content


def test_optional_object_root_uses_json_mode_and_the_prompted_schema():
    schema = {"anyOf": [{"type": "object", "properties": {"a": {"type": "integer"}}}, {"type": "null"}]}
    provider = ScriptedProvider(['{"a": 1}'])
    result = run(task(schema=schema), {"openai": provider})

    assert result.json_payload == {"a": 1}
    [request] = provider.requests
    assert request.json_schema is None and request.json_mode is True
    assert "Answer with only a JSON value matching this schema" in request.messages[0].content


def test_unknown_provider_is_raised_before_any_call():
    provider = ScriptedProvider([GOOD])
    with pytest.raises(BadRequest) as caught:
        run(task(models=("openai/gpt-4o-mini", "nope/model")), {"openai": provider})
    assert caught.value.field_name == "model" and provider.requests == []
