"""The engine's provider requests through a real `RateLimiter` on a real Redis (DB 0 of
`CONVEYOR_TEST_REDIS_URL`), with scripted providers. Every test limits a model name of its own, so
budgets never collide and nothing needs flushing (the limiter's keys expire on their own)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

import fakeredis
import pytest
import redis.asyncio as aioredis
from pydantic import ValidationError

from app.config import Settings
from app.engine.admission import estimate_request_tokens
from app.engine.cache import RedisResultCache
from app.engine.cost import PriceTable
from app.engine.deps import EngineDeps
from app.engine.executor import complete_task
from app.engine.streaming import complete_streaming
from app.engine.task import InvocationConfig, ModelSpec, TaskSpec
from app.errors import ProviderRateLimited, ProviderServerError, ProviderTimeout, TaskFailed
from app.providers.base import CompletionRequest, Message, Provider, ResolvedModel, Usage, provider_key_id
from app.providers.registry import ProviderRegistry
from app.ratelimit import RateLimitConfig, RateLimiter, RateLimitWaitExceeded
from app.store import keys
from tests.ratelimit.conftest import max_in_window
from tests.redis_dbs import new_redis_url, release_redis_url
from tests.unit.scripted_provider import RecordingSleep, ScriptedProvider

SCHEMA = {"type": "object", "properties": {"sum": {"type": "integer"}}, "required": ["sum"]}
GOOD = '{"sum": 4}'


@dataclass
class TimedProvider(ScriptedProvider):
    """A ScriptedProvider that takes `latency` seconds and notes when each request arrived and how many
    were in flight at once."""

    latency: float = 0.0
    sent_at: list[float] = field(default_factory=list)
    in_flight: int = 0
    peak: int = 0

    async def complete(self, request: CompletionRequest):  # noqa: ANN201
        self.sent_at.append(time.monotonic())
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            await asyncio.sleep(self.latency)
            return await super().complete(request)
        finally:
            self.in_flight -= 1


@dataclass
class KeyedResolver:
    """`anything/<model id>` → one provider, sent with the API key named `key_id`."""

    provider: Provider
    key_id: str = ""

    def resolve(self, model_name: str) -> ResolvedModel:
        return ResolvedModel(self.provider, model_name.partition("/")[2], self.key_id)


def fresh_model(prefix: str = "scripted") -> str:
    return f"{prefix}/m-{uuid.uuid4().hex[:12]}"


def task(*models: str, schema: dict | None = SCHEMA, who: str = "x", max_attempts: int = 3, **options) -> TaskSpec:
    return TaskSpec(
        name="add",
        output_schema=schema,
        input={"x": 1, "y": 3, "who": who},
        models=tuple(ModelSpec(m, options=dict(options)) for m in models),
        config=InvocationConfig(max_attempts=max_attempts),
    )


def engine(provider: Provider, limiter: RateLimiter | None, *, key_id: str = "", **kw: Any) -> EngineDeps:
    return EngineDeps(
        resolver=KeyedResolver(provider, key_id), prices=PriceTable.from_path(None), rate_limiter=limiter, **kw
    )


def run(limits: dict[str, Any], scenario: Callable[[RateLimiter, aioredis.Redis], Awaitable[Any]]) -> Any:
    """`scenario(limiter, client)` on a fresh loop, with a limiter for `limits` on the test Redis."""

    async def main() -> Any:
        url = new_redis_url()  # a database of this process's own (tests/redis_dbs.py)
        client = aioredis.Redis.from_url(url)
        try:
            return await scenario(
                RateLimiter(client, RateLimitConfig.parse(json.dumps(limits)), key_names=keys), client
            )
        finally:
            await client.aclose()
            release_redis_url(url)

    return asyncio.run(main())


def budget(client: aioredis.Redis, model: str, key_id: str = "") -> Awaitable[dict[bytes, bytes]]:
    return client.hgetall(keys.rate_limit_budget(f"{model}|{key_id}"))


def test_concurrent_calls_never_exceed_the_rpm_of_their_model():
    """600 rpm is one request every 100 ms: 15 calls at once are spread over 1.4 s, not sent together."""
    model = fresh_model()
    provider = TimedProvider([GOOD] * 15, latency=0.02)

    async def scenario(limiter, client):
        deps = engine(provider, limiter)
        started = time.monotonic()
        results = await asyncio.gather(*(complete_task(task(model), deps, cache_scope="p") for _ in range(15)))
        return started, results

    started, results = run({model: {"rpm": 600}}, scenario)
    assert all(result.json_payload == {"sum": 4} for result in results)
    assert len(provider.sent_at) == 15
    assert max(provider.sent_at) - started >= 1.3  # 14 intervals of 100 ms, less 50 ms of slack
    assert max_in_window(provider.sent_at, 0.5) <= 6  # 5 intervals, plus one for jitter
    assert max_in_window(provider.sent_at, 0.1) <= 2


def test_reasks_and_fallbacks_take_permits_of_their_own_and_only_the_first_is_bound_by_max_rate_wait():
    """120 rpm: a re-ask waits its 500 ms even with max_rate_wait=0.1, because the call has begun;
    the fallback model has a budget of its own and is admitted at once."""
    first, second = fresh_model(), fresh_model()
    provider = TimedProvider(["not json", "still not json", GOOD])

    async def scenario(limiter, client):
        deps = engine(provider, limiter)
        result = await complete_task(task(first, second, max_attempts=2), deps, cache_scope="p", max_rate_wait=0.1)
        return result, await budget(client, first), await budget(client, second)

    result, first_budget, second_budget = run({"scripted/*": {"rpm": 120}}, scenario)
    assert [(a.model, a.error_type) for a in result.attempts] == [
        (first, "StructuredOutputError"),
        (first, "StructuredOutputError"),
        (second, None),
    ]
    sent = provider.sent_at
    assert sent[1] - sent[0] >= 0.44  # the re-ask was paced
    assert sent[2] - sent[1] < 0.3  # the fallback model's own budget had room
    assert b"req" in first_budget and b"req" in second_budget


def test_a_429_pauses_the_model_for_every_process_and_is_waited_out_once():
    model = fresh_model()
    provider = TimedProvider([ProviderRateLimited("slow down", retry_after=0.4), GOOD])
    sleep = RecordingSleep()

    async def scenario(limiter, client):
        deps = engine(provider, limiter, sleep=sleep)
        call = asyncio.create_task(complete_task(task(model), deps, cache_scope="p"))
        while not provider.sent_at:
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.05)
        # Another process's limiter, sharing nothing but Redis, is held back by the same pause.
        other = RateLimiter(client, limiter.config, key_names=keys)
        permit = await other.acquire(model, estimated_tokens=10)
        await permit.release(0)
        return await call, permit.waited, await budget(client, model)

    result, other_waited, state = run({model: {"rpm": 6000}}, scenario)
    assert [a.error_type for a in result.attempts] == ["ProviderRateLimited", None]
    assert provider.sent_at[1] - provider.sent_at[0] >= 0.38  # the permit waited out the Retry-After...
    assert sleep.waits == []  # ...so the engine did not wait it out a second time
    assert other_waited >= 0.25
    assert float(state[b"factor"]) == pytest.approx(0.5)  # and the model's rate is halved for a while


def test_a_429_on_a_model_without_limits_is_waited_out_by_the_engine():
    model = fresh_model()
    provider = TimedProvider([ProviderRateLimited("slow down", retry_after=0.25), GOOD])
    sleep = RecordingSleep()

    async def scenario(limiter, client):
        return await complete_task(task(model), engine(provider, limiter, sleep=sleep), cache_scope="p")

    result = run({"other/*": {"rpm": 1}}, scenario)
    assert result.json_payload == {"sum": 4} and sleep.waits == [0.25]


@pytest.mark.parametrize(
    ("outcome", "next_waits_for_the_estimate"),
    [
        (GOOD, False),  # used 120 tokens: the rest of the 3,000-token estimate goes back at once
        (ProviderRateLimited("busy", retry_after=0.01), False),  # refused: nothing was used
        (ProviderTimeout("read timeout"), True),  # unknown: the estimate stands
    ],
)
def test_release_corrects_the_token_estimate_by_the_actual_usage(outcome, next_waits_for_the_estimate):
    """60,000 tpm is 1,000 tokens/s; a request capped at 3,000 output tokens is estimated at over 3,000."""
    model = fresh_model()
    provider = TimedProvider([outcome], usage=Usage(100, 20))

    async def scenario(limiter, client):
        deps = engine(provider, limiter, rate_limit_retries=0)
        with contextlib.suppress(TaskFailed):
            await complete_task(task(model, max_tokens=3000, max_attempts=1), deps, cache_scope="p")
        try:
            permit = await limiter.acquire(model, estimated_tokens=100, max_wait=0.5)
        except RateLimitWaitExceeded:
            return None
        await permit.release(100)
        return permit.waited

    waited = run({model: {"tpm": 60_000}}, scenario)
    if next_waits_for_the_estimate:
        assert waited is None
    else:
        assert waited is not None and waited < 0.3


def test_max_rate_wait_raises_before_any_provider_call():
    model = fresh_model()
    provider = TimedProvider([GOOD])

    async def scenario(limiter, client):
        taken = await limiter.acquire(model, estimated_tokens=1)  # 1 rpm: the next request is a minute away
        started = time.monotonic()
        with pytest.raises(RateLimitWaitExceeded) as caught:
            await complete_task(task(model), engine(provider, limiter), cache_scope="p", priority=0, max_rate_wait=2)
        await taken.release(1)
        return caught.value, time.monotonic() - started

    exceeded, elapsed = run({model: {"rpm": 1}}, scenario)
    assert provider.requests == []
    assert exceeded.model == model and exceeded.reason == "rpm" and 55 <= exceeded.retry_after <= 60
    assert elapsed < 1.0  # an exact wait fails fast: no point waiting 2 s to learn it is 60


def test_concurrency_slots_are_held_per_request_and_freed_on_errors_and_cancellation():
    model = fresh_model()
    script = [GOOD, ProviderServerError("503"), GOOD, ProviderServerError("503"), GOOD, GOOD]
    provider = TimedProvider(script, latency=0.1)
    slow = TimedProvider([GOOD], latency=30)

    async def scenario(limiter, client):
        deps = engine(provider, limiter)
        outcomes = await asyncio.gather(
            *(complete_task(task(model, max_attempts=1), deps, cache_scope="p") for _ in range(6)),
            return_exceptions=True,
        )
        after_calls = await client.zcard(keys.rate_limit_slots(f"{model}|"))
        stuck = asyncio.create_task(complete_task(task(model), engine(slow, limiter), cache_scope="p"))
        while not slow.sent_at:
            await asyncio.sleep(0.005)
        held = await client.zcard(keys.rate_limit_slots(f"{model}|"))
        stuck.cancel()
        await asyncio.gather(stuck, return_exceptions=True)
        return outcomes, after_calls, held, await client.zcard(keys.rate_limit_slots(f"{model}|"))

    outcomes, after_calls, held, after_cancel = run({model: {"concurrency": 2}}, scenario)
    assert sum(isinstance(o, TaskFailed) for o in outcomes) == 2
    assert provider.peak == 2 and len(provider.sent_at) == 6
    assert (after_calls, held, after_cancel) == (0, 1, 0)


def test_streamed_calls_take_permits_too():
    model = fresh_model()
    provider = ScriptedProvider([GOOD, GOOD])
    published: list[str] = []  # the deltas
    granted: list[float] = []

    class Sink:
        async def delta(self, text: str) -> None:
            published.append(text)

        async def reset(self, error_type: str, message: str) -> None:
            pass

    async def scenario(limiter, client):
        acquire = limiter.acquire

        async def noting_grants(*args, **kwargs):  # noqa: ANN002, ANN003
            permit = await acquire(*args, **kwargs)
            granted.append(time.monotonic())
            return permit

        limiter.acquire = noting_grants
        deps = engine(provider, limiter)
        for _ in range(2):
            await complete_streaming(task(model), deps, cache_scope="p", sink=Sink(), priority=0, max_rate_wait=5)

    run({model: {"rpm": 60}}, scenario)
    # 60 rpm less the limiter's 50 ms of burst slack: Redis grants the second permit at least 0.95 s
    # after the first. The 0.1 s more allowed here is for the two answers reaching this process
    # unevenly late on a busy machine (a scheduling delay is absolute, whatever the rate).
    assert len(granted) == 2 and granted[1] - granted[0] >= 0.85
    assert published == [GOOD, GOOD]


def test_a_cache_hit_never_touches_the_limiter():
    """The second call is served from the cache although the limiter's Redis is unreachable."""
    model = fresh_model()
    provider = ScriptedProvider([GOOD])
    cached = replace(task(model), config=InvocationConfig(max_attempts=1, cache_ttl=60))

    async def main():
        cache = RedisResultCache(fakeredis.FakeAsyncRedis(), key_names=keys)
        dead = RateLimiter(
            aioredis.Redis.from_url("redis://127.0.0.1:1/0"),
            RateLimitConfig.parse('{"scripted/*": {}}'),
            key_names=keys,
        )
        first = await complete_task(cached, engine(provider, None, cache=cache), cache_scope="p")
        second = await complete_task(cached, engine(provider, dead, cache=cache), cache_scope="p", max_rate_wait=0.2)
        return first, second

    first, second = asyncio.run(main())
    assert not first.cached and second.cached and second.json_payload == {"sum": 4}


def test_interactive_calls_overtake_batch_calls_waiting_in_the_same_process():
    """300 rpm: one request every 200 ms. Eight batch calls queue up; an interactive call arriving
    next goes right after the batch call already at the head of the line, not after all eight."""
    model = fresh_model()
    provider = TimedProvider([GOOD] * 9)

    async def scenario(limiter, client):
        deps = engine(provider, limiter)
        batch = [
            asyncio.create_task(complete_task(task(model, who=f"b{i}"), deps, cache_scope="p", priority=0))
            for i in range(8)
        ]
        await asyncio.sleep(0.05)
        await complete_task(task(model, who="interactive"), deps, cache_scope="p", priority=1)
        for call in batch:
            call.cancel()
        await asyncio.gather(*batch, return_exceptions=True)

    run({model: {"rpm": 300}}, scenario)
    order = ["interactive" in request.messages[-1].content for request in provider.requests]
    assert order.index(True) <= 2  # behind the first batch call and the one at the head of the line


def test_each_provider_key_has_a_budget_of_its_own():
    """`model|<key id>` rules apply to that provider key only; other keys fall back to the model's rule."""
    model = fresh_model()
    team_a, team_b = provider_key_id("sk-a"), provider_key_id("sk-b")
    provider = TimedProvider([GOOD] * 4)

    async def scenario(limiter, client):
        a, b = engine(provider, limiter, key_id=team_a), engine(provider, limiter, key_id=team_b)
        started = time.monotonic()
        await asyncio.gather(*(complete_task(task(model), d, cache_scope="p") for d in (a, a, b, b)))
        return started

    started = run({model: {"rpm": 60}, f"{model}|{team_b}": {"rpm": 6000}}, scenario)
    gaps = sorted(t - started for t in provider.sent_at)
    assert gaps[2] < 0.3  # key a's first and both of key b's go at once...
    assert gaps[3] >= 0.9  # ...key a's second waits for its own budget (60 rpm)


def test_the_registry_names_the_provider_key_of_each_prefix():
    settings = Settings(_env_file=None, openai_api_key="sk-one", anthropic_api_key="")
    registry = ProviderRegistry(settings)
    assert registry.resolve("openai/gpt-4o-mini").provider_key_id == provider_key_id("sk-one") != ""
    assert registry.resolve("anthropic/claude-3-5-haiku-latest").provider_key_id == ""
    assert registry.resolve("fake/x?latency_ms=5").provider_key_id == provider_key_id("fake-key")


def test_the_estimate_counts_messages_schema_and_the_output_cap():
    messages = (Message("system", "s" * 400), Message("user", "u" * 400))
    plain = CompletionRequest(model="m", messages=messages)
    capped = CompletionRequest(model="m", messages=messages, options={"max_completion_tokens": 50})
    structured = CompletionRequest(model="m", messages=messages, options={"max_tokens": 50}, json_schema=SCHEMA)
    assert estimate_request_tokens(plain) == 200 + 512
    assert estimate_request_tokens(capped) == 200 + 50
    assert estimate_request_tokens(structured) > estimate_request_tokens(capped)


def test_bad_rate_limits_stop_start_up_naming_the_model_and_the_key():
    with pytest.raises(ValidationError) as caught:
        Settings(_env_file=None, rate_limits='{"openai/gpt-4o": {"rpm": 500}, "fake/*": {"rpn": 5}}')
    assert "CONVEYOR_RATE_LIMITS: model 'fake/*': unknown key 'rpn'" in str(caught.value)
    with pytest.raises(ValidationError, match="not valid JSON"):
        Settings(_env_file=None, rate_limits="{rpm: 5}")
    assert Settings(_env_file=None, rate_limits="").rate_limits == ""
