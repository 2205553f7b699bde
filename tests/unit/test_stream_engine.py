"""The streaming execution path: what a running job publishes as its attempts stream, fail and retry."""

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import fakeredis
import pytest

from app.engine.cache import RedisResultCache
from app.engine.cost import PriceTable
from app.engine.deps import EngineDeps
from app.engine.streaming import complete_streaming
from app.engine.task import InvocationConfig, ModelSpec, TaskSpec
from app.errors import ProviderConnectionError, ProviderServerError, TaskFailed
from app.providers.base import Completion, CompletionRequest, StreamEvent, TextDelta, Usage
from app.services.stream_messages import StreamMessage
from app.store import keys
from tests.unit.scripted_provider import DictResolver, RecordingSleep, TickingClock

SCHEMA = {"type": "object", "properties": {"sum": {"type": "integer"}}, "required": ["sum"]}


@dataclass
class StreamingProvider:
    """Each request plays the next script entry: a list of pieces, optionally ending in an exception."""

    script: list[list[str | Exception]]
    name: str = "streaming"
    requests: list[CompletionRequest] = field(default_factory=list)

    async def complete(self, request: CompletionRequest) -> Completion:
        raise AssertionError("a streamed call must not use complete()")

    async def stream(self, request: CompletionRequest) -> AsyncIterator[StreamEvent]:
        self.requests.append(request)
        pieces = self.script.pop(0)
        text = ""
        for piece in pieces:
            if isinstance(piece, Exception):
                raise piece
            text += piece
            yield TextDelta(piece)
        yield Completion(text, Usage(10, len(pieces)), request.model)


def run(task: TaskSpec, providers: dict, *, restarted=False, cache=None):
    messages: list[StreamMessage] = []

    class Sink:
        async def delta(self, text: str) -> None:
            messages.append(StreamMessage.decode(StreamMessage("delta", text=text).encode()))  # through the wire

        async def reset(self, error_type: str, message: str) -> None:
            reset = StreamMessage("reset", error_type=error_type, error_message=message)
            messages.append(StreamMessage.decode(reset.encode()))

    deps = EngineDeps(
        resolver=DictResolver(providers),
        prices=PriceTable.from_path(None),
        cache=cache,
        sleep=RecordingSleep(),
        clock=TickingClock(),
    )
    try:
        result = asyncio.run(complete_streaming(task, deps, cache_scope="p", sink=Sink(), restarted=restarted))
    except TaskFailed as exc:
        return exc, messages
    return result, messages


def kinds(messages):
    return [(m.kind, m.text or m.error_type) for m in messages]


def test_text_deltas_flow_as_they_come():
    provider = StreamingProvider([["Hel", "lo", "!"]])
    result, messages = run(TaskSpec(name="t", models=(ModelSpec("a/m"),)), {"a": provider})
    assert result.message == "Hello!" and result.usage == Usage(10, 3)
    assert kinds(messages) == [("delta", "Hel"), ("delta", "lo"), ("delta", "!")]


def test_a_failure_before_any_output_is_invisible():
    provider = StreamingProvider([[ProviderServerError("503", model="a/m")], ["ok"]])
    task = TaskSpec(name="t", models=(ModelSpec("a/m"), ModelSpec("a/n")))
    result, messages = run(task, {"a": provider})
    assert result.message == "ok" and result.model == "a/n"
    assert kinds(messages) == [("delta", "ok")]


def test_a_schema_failure_after_output_resets_before_the_next_attempt():
    provider = StreamingProvider([['{"sum": "f', 'our"}'], ['{"sum"', ": 4}"]])
    task = TaskSpec(name="t", output_schema=SCHEMA, models=(ModelSpec("a/m"),), config=InvocationConfig(max_attempts=2))
    result, messages = run(task, {"a": provider})
    assert result.json_payload == {"sum": 4}
    assert kinds(messages) == [
        ("delta", '{"sum": "f'),
        ("delta", 'our"}'),
        ("reset", "StructuredOutputError"),
        ("delta", '{"sum"'),
        ("delta", ": 4}"),
    ]
    assert "a new attempt follows" in messages[2].error_message


def test_a_stream_that_breaks_off_fails_the_call_and_records_the_partial_output():
    provider = StreamingProvider([["Once upon", ProviderConnectionError("connection dropped", model="a/m")]])
    failure, messages = run(TaskSpec(name="t", models=(ModelSpec("a/m"),)), {"a": provider})
    assert isinstance(failure, TaskFailed)
    assert kinds(messages) == [("delta", "Once upon")]  # the API ends the stream with the stored error
    assert failure.records[0].output_text == "Once upon"
    assert failure.records[0].error_type == "ProviderConnectionError"


def test_a_redelivered_job_owes_the_client_a_reset():
    provider = StreamingProvider([["again"]])
    _, messages = run(TaskSpec(name="t", models=(ModelSpec("a/m"),)), {"a": provider}, restarted=True)
    assert kinds(messages) == [("reset", "WorkerLost"), ("delta", "again")]


def test_a_cache_hit_is_published_whole():
    task = TaskSpec(name="t", output_schema=SCHEMA, models=(ModelSpec("a/m"),), config=InvocationConfig(cache_ttl=60))
    cache = RedisResultCache(fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer()), key_names=keys)
    run(task, {"a": StreamingProvider([['{"sum": 4}']])}, cache=cache)
    result, messages = run(task, {"a": StreamingProvider([])}, cache=cache)
    assert result.cached
    assert kinds(messages) == [("delta", json.dumps({"sum": 4}))]


@pytest.mark.parametrize(
    "message",
    [
        StreamMessage("delta", text="x\ny"),
        StreamMessage("reset", error_type="E", error_message="m"),
        StreamMessage("end"),
    ],
)
def test_wire_format_round_trips(message):
    assert StreamMessage.decode(message.encode()) == message
