"""The engine's attempt observer (app/engine/observer.py): told of every attempt, in order, with the
request it sent and the completion it got, in the caller's context."""

import asyncio
import contextvars

from app.engine.cost import PriceTable
from app.engine.deps import EngineDeps
from app.engine.executor import complete_task
from app.engine.observer import ObservedAttempt
from app.engine.task import InvocationConfig, ModelSpec, TaskSpec
from app.errors import ProviderServerError
from tests.unit.scripted_provider import DictResolver, RecordingSleep, ScriptedProvider, TickingClock

SCHEMA = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}
CALLER = contextvars.ContextVar("caller", default=None)


class Recorder:
    def __init__(self) -> None:
        self.seen: list[tuple[ObservedAttempt, object]] = []

    def attempt_ended(self, attempt: ObservedAttempt) -> None:
        self.seen.append((attempt, CALLER.get()))


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
