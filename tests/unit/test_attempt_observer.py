"""The engine's attempt observer (app/engine/observer.py): told of every attempt, in order, with the
request it sent and the completion it got, in the caller's context; of a call answered from the cache
(no attempt); and, on the provider-batch path, which attempt the batch answered."""

import asyncio
import contextvars

import fakeredis

from app.engine.batch_answers import complete_from_batch
from app.engine.cache import RedisResultCache
from app.engine.cost import PriceTable
from app.engine.deps import EngineDeps
from app.engine.executor import complete_task
from app.engine.observer import CacheHit, ObservedAttempt
from app.engine.task import InvocationConfig, ModelSpec, TaskSpec
from app.errors import ProviderServerError
from app.providers.base import Completion, Usage
from app.store import keys
from tests.unit.scripted_provider import DictResolver, RecordingSleep, ScriptedProvider, TickingClock

SCHEMA = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}
CALLER = contextvars.ContextVar("caller", default=None)


class Recorder:
    def __init__(self) -> None:
        self.seen: list[tuple[ObservedAttempt, object]] = []
        self.hits: list[tuple[CacheHit, object]] = []

    def attempt_ended(self, attempt: ObservedAttempt) -> None:
        self.seen.append((attempt, CALLER.get()))

    def answered_from_cache(self, hit: CacheHit) -> None:
        self.hits.append((hit, CALLER.get()))


def test_every_attempt_of_a_fallback_is_observed_with_its_request_and_completion():
    down = ScriptedProvider([ProviderServerError("upstream 503", model="openai/a")], name="openai")
    answering = ScriptedProvider(['{"answer": 1}', '{"answer": "42"}'], name="anthropic")
    recorder = Recorder()
    deps = EngineDeps(
        resolver=DictResolver({"openai": down, "anthropic": answering}),
        prices=PriceTable.from_path(None),
        sleep=RecordingSleep(),
        clock=TickingClock(),
        observer=recorder,
    )
    task = TaskSpec(
        name="qa",
        instructions="Answer.",
        output_schema=SCHEMA,
        input="6 x 7?",
        models=(ModelSpec("openai/a"), ModelSpec("anthropic/b")),
        config=InvocationConfig(max_attempts=2),
    )

    async def call():
        CALLER.set("the job's context")
        return await complete_task(task, deps, cache_scope="p")

    result = asyncio.run(call())

    observed = [attempt for attempt, _ in recorder.seen]
    assert [a.record for a in observed] == list(result.attempts)  # the very records, in order
    assert [(a.provider, a.request.model) for a in observed] == [
        ("openai", "a"),
        ("anthropic", "b"),
        ("anthropic", "b"),
    ]
    assert observed[0].completion is None and observed[0].record.error_type == "ProviderServerError"
    assert observed[1].completion.text == '{"answer": 1}' and observed[1].record.error_type == "StructuredOutputError"
    assert observed[2].completion.text == '{"answer": "42"}' and observed[2].record.succeeded
    assert len(observed[2].request.messages) > len(observed[1].request.messages)  # the re-ask it sent
    assert {context for _, context in recorder.seen} == {"the job's context"}


def test_a_cache_hit_is_reported_with_the_answering_model_and_no_attempt():
    provider = ScriptedProvider(['{"answer": "42"}'], name="openai")  # a second request would fail
    recorder = Recorder()
    deps = EngineDeps(
        resolver=DictResolver({"openai": provider}),
        prices=PriceTable.from_path(None),
        cache=RedisResultCache(fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer()), key_names=keys),
        clock=TickingClock(),
        observer=recorder,
    )
    task = TaskSpec(
        name="qa",
        output_schema=SCHEMA,
        input="6 x 7?",
        models=(ModelSpec("openai/a"),),
        config=InvocationConfig(cache_ttl=60),
    )

    async def call():
        CALLER.set("the job's context")
        return await complete_task(task, deps, cache_scope="p"), await complete_task(task, deps, cache_scope="p")

    first, second = asyncio.run(call())
    assert (first.cached, second.cached) == (False, True)
    assert len(recorder.seen) == 1  # the first call's attempt; the hit made none
    [(hit, context)] = recorder.hits
    assert (hit.model, context) == ("openai/a", "the job's context")
    assert hit.started_at < hit.ended_at == second.ended_at


def test_the_attempt_a_provider_batch_answered_is_marked_and_the_rest_are_not():
    answered = Completion(text='{"answer": 1}', model="a-0613", usage=Usage(7, 3), finish_reason="stop")
    provider = ScriptedProvider(['{"answer": "42"}'], name="openai")  # the re-ask, sent now
    recorder = Recorder()
    deps = EngineDeps(
        resolver=DictResolver({"openai": provider}),
        prices=PriceTable.from_path(None),
        sleep=RecordingSleep(),
        clock=TickingClock(),
        observer=recorder,
    )
    task = TaskSpec(name="qa", output_schema=SCHEMA, input="6 x 7?", models=(ModelSpec("openai/a"),))

    result = asyncio.run(complete_from_batch(task, deps, answered))

    observed = [attempt for attempt, _ in recorder.seen]
    assert [a.record for a in observed] == list(result.attempts)
    assert [a.from_provider_batch for a in observed] == [True, False]  # the batch's answer, then the re-ask
    assert observed[0].completion == answered and observed[0].record.usage == Usage(7, 3)
