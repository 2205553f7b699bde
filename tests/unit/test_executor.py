import asyncio

import fakeredis
import pytest

from app.engine.cache import RedisResultCache, cache_key
from app.engine.cost import PriceTable
from app.engine.deps import EngineDeps
from app.engine.executor import check_task_schemas, complete_task, validate_task_input
from app.engine.results import Cost
from app.engine.task import InvocationConfig, ModelSpec, TaskSpec
from app.errors import BadRequest, TaskFailed
from app.providers.base import Usage
from app.store import keys
from tests.unit.scripted_provider import DictResolver, RecordingSleep, ScriptedProvider, TickingClock

SCHEMA = {"type": "object", "properties": {"sum": {"type": "integer"}}, "required": ["sum"]}


def task(ttl: int, **kw) -> TaskSpec:
    fields = dict(
        name="add",
        output_schema=SCHEMA,
        input={"x": 1, "y": 3},
        models=(ModelSpec("fake/adder"),),
        config=InvocationConfig(max_attempts=1, cache_ttl=ttl),
    )
    fields.update(kw)
    return TaskSpec(**fields)


def deps(provider: ScriptedProvider, cache) -> EngineDeps:
    return EngineDeps(
        resolver=DictResolver({"fake": provider}),
        prices=PriceTable.from_path(None),
        cache=cache,
        platform_fee_rate=0.5,
        sleep=RecordingSleep(),
        clock=TickingClock(),
    )


def test_cache_hit_returns_cached_result_without_calling_the_provider():
    provider = ScriptedProvider(['{"sum": 4}'])  # one answer only: a second provider call would fail

    async def scenario():
        redis = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer())
        engine = deps(provider, RedisResultCache(redis, key_names=keys))
        first = await complete_task(task(60), engine, cache_scope="proj")
        second = await complete_task(task(60), engine, cache_scope="proj")
        ttl = await redis.ttl(keys.result_cache("proj", cache_key(task(60))))
        return first, second, ttl

    first, second, ttl = asyncio.run(scenario())
    assert len(provider.requests) == 1
    assert (first.cached, first.usage, first.json_payload) == (False, Usage(100, 20), {"sum": 4})
    assert first.cost.generation == pytest.approx((100 * 0.5 + 20 * 1.5) / 1e6)
    assert first.cost.platform == pytest.approx(first.cost.generation * 0.5)
    assert (second.cached, second.json_payload, second.model) == (True, {"sum": 4}, "fake/adder")
    assert (second.usage, second.cost, second.attempts) == (Usage(), Cost(), ())
    assert second.started_at > first.ended_at
    assert 0 < ttl <= 60


def test_without_ttl_nothing_is_cached():
    provider = ScriptedProvider(['{"sum": 4}', '{"sum": 4}'])

    async def scenario():
        redis = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer())
        engine = deps(provider, RedisResultCache(redis, key_names=keys))
        results = [await complete_task(task(0), engine, cache_scope="proj") for _ in range(2)]
        return results, await redis.keys("*")

    results, stored = asyncio.run(scenario())
    assert [r.cached for r in results] == [False, False] and len(provider.requests) == 2
    assert stored == []


def test_errors_are_never_cached():
    provider = ScriptedProvider(["not json", '{"sum": 4}'])

    async def scenario():
        redis = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer())
        engine = deps(provider, RedisResultCache(redis, key_names=keys))
        with pytest.raises(TaskFailed) as caught:
            await complete_task(task(60), engine, cache_scope="proj")
        stored_after_failure = await redis.keys("*")
        retried = await complete_task(task(60), engine, cache_scope="proj")
        return caught.value, stored_after_failure, retried

    failure, stored_after_failure, retried = asyncio.run(scenario())
    assert failure.attempts[0].error_type == "StructuredOutputError"
    assert stored_after_failure == []
    assert retried.cached is False and retried.json_payload == {"sum": 4} and len(provider.requests) == 2


class BrokenCache:
    async def get(self, scope, key):
        raise ConnectionError("redis down")

    async def set(self, scope, key, result, ttl):
        raise ConnectionError("redis down")


def test_a_cache_outage_does_not_fail_the_call():
    provider = ScriptedProvider(['{"sum": 4}'])
    result = asyncio.run(complete_task(task(60), deps(provider, BrokenCache()), cache_scope="proj"))
    assert result.json_payload == {"sum": 4} and not result.cached


INPUT_SCHEMA = {
    "type": "object",
    "properties": {"x": {"type": "integer"}, "when": {"type": "string", "format": "date"}},
    "required": ["x"],
}


def test_validate_task_input_names_the_failing_path():
    validate_task_input(task(0, input_schema=INPUT_SCHEMA, input={"x": 1, "when": "2025-01-31"}))
    validate_task_input(task(0, input={"anything": True}))  # no schema: nothing to check
    with pytest.raises(BadRequest) as caught:
        validate_task_input(task(0, input_schema=INPUT_SCHEMA, input={"x": "one", "when": "31/01/2025"}))
    assert caught.value.field_name == "input"
    assert caught.value.detail == (
        "input: does not match input_schema: $.when: '31/01/2025' is not a 'date'; $.x: 'one' is not of type 'integer'"
    )


def test_check_task_schemas_names_the_bad_schema():
    check_task_schemas(task(0, input_schema=INPUT_SCHEMA))
    with pytest.raises(BadRequest) as caught:
        check_task_schemas(task(0, input_schema=INPUT_SCHEMA, output_schema={"type": 5}))
    assert caught.value.field_name == "output_schema"
    with pytest.raises(BadRequest) as caught:
        check_task_schemas(task(0, input_schema={"required": "x"}))
    assert caught.value.field_name == "input_schema"
    assert caught.value.message.startswith("not a valid JSON Schema at $.required: 'x' is not of type 'array'")


def test_engine_deps_from_settings(tmp_path):
    from app.config import Settings

    prices = tmp_path / "prices.json"
    prices.write_text(
        '{"x/*": {"input_per_million": 1, "output_per_million": 1, "hosting_provider": "x", "location": "eu"}}'
    )
    settings = Settings(
        CONVEYOR_PLATFORM_FEE_RATE=0.25,
        CONVEYOR_MAX_RETRY_AFTER=3,
        CONVEYOR_RATE_LIMIT_RETRIES=5,
        CONVEYOR_PRICE_TABLE=str(prices),
    )
    engine = EngineDeps.from_settings(settings, resolver=DictResolver({}), cache=None)
    assert (engine.platform_fee_rate, engine.max_retry_after, engine.rate_limit_retries) == (0.25, 3.0, 5)
    assert [m.name for m in engine.prices.models()] == ["x/*"]
    assert engine.clock().tzinfo is not None and engine.cache is None
