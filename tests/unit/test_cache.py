import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta, timezone

import fakeredis
import pytest

from app.engine.cache import RedisResultCache, cache_key, call_result_from_json, call_result_to_json
from app.engine.results import AttemptRecord, CallResult, Cost
from app.engine.task import Example, InvocationConfig, ModelSpec, TaskSpec
from app.providers.base import Usage
from app.store import keys

BASE = TaskSpec(
    name="qa",
    instructions="Answer.",
    input_schema={"type": "object", "properties": {"q": {"type": "string"}, "n": {"type": "integer"}}},
    output_schema={"type": "object", "properties": {"a": {"type": "string"}}},
    input={"q": "6 x 7?", "n": 2},
    examples=(Example({"q": "1+1"}, {"a": "2"}, comment="easy"),),
    models=(ModelSpec("openai/gpt-4o-mini", {"temperature": 0.0, "top_p": 1}, {"X-A": "1"}),),
    config=InvocationConfig(max_attempts=3, cache_ttl=60),
)


def test_cache_key_is_stable_and_ignores_dict_key_order():
    reordered = dataclasses.replace(
        BASE,
        input_schema={"properties": {"n": {"type": "integer"}, "q": {"type": "string"}}, "type": "object"},
        input={"n": 2, "q": "6 x 7?"},
        models=(ModelSpec("openai/gpt-4o-mini", {"top_p": 1, "temperature": 0.0}, {"X-A": "1"}),),
    )
    key = cache_key(BASE)
    assert len(key) == 64 and int(key, 16) >= 0
    assert cache_key(dataclasses.replace(BASE)) == key == cache_key(reordered)


CHANGES = {
    "name": dict(name="qa2"),
    "instructions": dict(instructions="Answer briefly."),
    "input_schema": dict(input_schema={"type": "object"}),
    "output_schema": dict(output_schema={"type": "object", "properties": {"a": {"type": "integer"}}}),
    "input": dict(input={"q": "6 x 8?", "n": 2}),
    "example input": dict(examples=(Example({"q": "1+2"}, {"a": "2"}, comment="easy"),)),
    "example output": dict(examples=(Example({"q": "1+1"}, {"a": "two"}, comment="easy"),)),
    "example comment": dict(examples=(Example({"q": "1+1"}, {"a": "2"}, comment="hard"),)),
    "model": dict(models=(ModelSpec("openai/gpt-4o", {"temperature": 0.0, "top_p": 1}, {"X-A": "1"}),)),
    "model option": dict(models=(ModelSpec("openai/gpt-4o-mini", {"temperature": 0.5, "top_p": 1}, {"X-A": "1"}),)),
    "extra header": dict(models=(ModelSpec("openai/gpt-4o-mini", {"temperature": 0.0, "top_p": 1}, {"X-A": "2"}),)),
    "fallback added": dict(models=(*BASE.models, ModelSpec("anthropic/claude-sonnet-4-0"))),
    "max_attempts": dict(config=InvocationConfig(max_attempts=4, cache_ttl=60)),
}


def test_every_answer_changing_field_changes_the_key():
    keys_by_change = {name: cache_key(dataclasses.replace(BASE, **change)) for name, change in CHANGES.items()}
    assert cache_key(BASE) not in keys_by_change.values()
    assert len(set(keys_by_change.values())) == len(CHANGES)


def test_tags_and_ttl_do_not_change_the_key():
    same = dataclasses.replace(BASE, tags={"team": "x"}, config=InvocationConfig(max_attempts=3, cache_ttl=5))
    assert cache_key(same) == cache_key(BASE)


def sample_result() -> CallResult:
    t0 = datetime(2025, 3, 4, 5, 6, 7, 123456, tzinfo=UTC)
    attempts = (
        AttemptRecord(
            "openai/gpt-4o-mini",
            1,
            t0,
            t0 + timedelta(seconds=1),
            Usage(10, 3),
            Cost(1e-6, 1e-7),
            "oops",
            "StructuredOutputError",
            "the answer is not valid JSON",
        ),
        AttemptRecord(
            "openai/gpt-4o-mini",
            2,
            t0 + timedelta(seconds=1),
            t0 + timedelta(seconds=2),
            Usage(12, 4, 1),
            Cost(0.1 + 0.2, 0.3),
            '{"a": "é"}',
        ),
    )
    return CallResult(
        model="openai/gpt-4o-mini",
        message=None,
        json_payload={"a": "é", "n": [1, 2.5, None, True]},
        usage=Usage(22, 7, 1),
        cost=Cost(0.1 + 0.2 + 1e-6, 0.3 + 1e-7),
        attempts=attempts,
        started_at=t0,
        ended_at=t0.astimezone(timezone(timedelta(hours=2))) + timedelta(seconds=2),
    )


def test_json_round_trip_is_exact():
    result = sample_result()
    back = call_result_from_json(call_result_to_json(result))
    assert back == result
    assert back.ended_at.utcoffset() == timedelta(hours=2) and back.cost.generation == 0.1 + 0.2 + 1e-6


def test_redis_cache_stores_under_the_keys_module_name_with_ttl():
    async def scenario():
        redis = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer())
        cache = RedisResultCache(redis, key_names=keys)
        assert await cache.get("proj", "abc") is None
        await cache.set("proj", "abc", sample_result(), 60)
        stored = await cache.get("proj", "abc")
        other_scope = await cache.get("other", "abc")
        ttl = await redis.ttl(keys.result_cache("proj", "abc"))
        await redis.set(keys.result_cache("proj", "bad"), b"{not json")
        corrupt = await cache.get("proj", "bad")
        return stored, other_scope, ttl, corrupt

    stored, other_scope, ttl, corrupt = asyncio.run(scenario())
    assert stored == sample_result()
    assert other_scope is None and corrupt is None
    assert 0 < ttl <= 60


def test_unknown_format_version_reads_as_error():
    with pytest.raises(ValueError, match="cache format 99"):
        call_result_from_json('{"format": 99}')
