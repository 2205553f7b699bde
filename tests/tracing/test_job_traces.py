"""The trace of a job beyond one plain run, on a real stack: a job re-sent after its worker died stays in
its call's trace; a cached answer shows as a span that says so; a batch is one request span that each
item's trace links to, on the queue and through the providers' batch APIs (OpenAI's and Anthropic's),
where every answer is a `chat {model}` span with its usage."""

from __future__ import annotations

import json
import threading
import uuid

import pytest
from sqlalchemy import select

from app.store.tables import Job
from tests.helpers import eventually, submit_batch, unique, wait_for_batch
from tests.tracing.receiver import Collected, ReceivedSpan
from tests.tracing.traced import SCHEMA, call, conveyor_trace_id, spans_by_kind, whole_call


def test_a_job_re_sent_after_its_worker_died_stays_in_its_calls_trace(stack, client, http_receiver, fake_provider):
    """The sweep re-sends the message of a job whose lease lapsed; the run it starts elsewhere is still a
    child of the API request's span (the killed worker's spans never left it)."""
    model = unique("fake/slow?latency_ms=3000")
    outcome: dict = {}
    caller = threading.Thread(target=lambda: outcome.update(result=call(client, model)))
    caller.start()
    eventually(lambda: fake_provider.requests_for(model), 15, what="the doomed worker's call at the provider")
    stack.kill_worker(stack.workers[-1])
    stack.start_worker()
    caller.join(timeout=60)

    result = outcome["result"]
    spans = whole_call(http_receiver, conveyor_trace_id(client, result["span_id"]), attempts=1)
    (api,), (job,), (chat,) = spans["server"], spans["consumer"], spans["client"]
    assert fake_provider.requests_for(model) == 2  # it did run twice
    assert job.parent_span_id == api.span_id and chat.parent_span_id == job.span_id
    assert job.attributes["conveyor.job.status"] == "succeeded"


def test_a_cached_answer_is_an_internal_span_and_no_model_call(client, http_receiver) -> None:
    body = {"input": f"cached {uuid.uuid4().hex[:6]}", "configuration": {"invocation.cache.ttl": 60}}
    first = call(client, "openai/gpt-4o-mini", **body)
    second = call(client, "openai/gpt-4o-mini", **body)
    assert (first["cached"], second["cached"]) == (False, True)

    trace_id = conveyor_trace_id(client, second["span_id"])
    spans = spans_by_kind(http_receiver, trace_id, server=1, consumer=1, client=0, internal=1)
    (job,), (hit,) = spans["consumer"], spans["internal"]
    assert (hit.name, hit.parent_span_id, hit.service) == ("cached chat gpt-4o-mini", job.span_id, "conveyor-worker")
    assert hit.attributes == {"conveyor.cache.hit": True, "conveyor.model": "openai/gpt-4o-mini"}
    assert job.start_ns <= hit.start_ns <= hit.end_ns <= job.end_ns
    # The first call's trace has its model call, and no cache span.
    assert whole_call(http_receiver, conveyor_trace_id(client, first["span_id"]), attempts=1)["internal"] == []


def item_traces(stack, batch_id: str) -> dict[str, str]:  # noqa: ANN001
    """Each item's Conveyor trace id (hex), by custom_id."""
    with stack.db.transaction() as session:
        rows = session.execute(select(Job.custom_id, Job.trace_id).where(Job.batch_id == batch_id)).all()
    return {custom_id: uuid.UUID(trace_id).hex for custom_id, trace_id in rows}


def batch_request_span(collected: Collected, batch_id: str) -> ReceivedSpan:
    (span,) = collected.wait_for(
        lambda spans: [s for s in spans if s.kind == "server" and s.attributes.get("conveyor.batch.id") == batch_id]
    )
    return span


def test_a_batch_is_one_request_span_that_every_items_trace_links_to(stack, client, http_receiver) -> None:
    batch = submit_batch(client, {"name": "traced-batch", "model": "openai/gpt-4o-mini", "output_schema": SCHEMA}, 3)
    wait_for_batch(client, batch["id"], lambda b: b["status"] == "completed")
    submitted = batch_request_span(http_receiver, batch["id"])
    assert (submitted.name, submitted.parent_span_id) == ("POST /v2/batches", "")

    for custom_id, trace_id in item_traces(stack, batch["id"]).items():
        spans = spans_by_kind(http_receiver, trace_id, consumer=1, client=1)
        (run,), (chat,) = spans["consumer"], spans["client"]
        assert (run.name, run.parent_span_id) == ("conveyor.run_batch_item", ""), custom_id  # the item's own root
        assert run.links == ((submitted.trace_id, submitted.span_id),)
        assert run.attributes["conveyor.batch.id"] == batch["id"]
        assert run.attributes["conveyor.job.status"] == "succeeded"
        assert chat.parent_span_id == run.span_id and chat.attributes["gen_ai.usage.output_tokens"] > 0
    assert http_receiver.trace(submitted.trace_id) == [submitted]  # the batch's own trace: its request alone


@pytest.mark.parametrize("provider", ["fake", "fake-anthropic"])  # OpenAI's Batch API, Anthropic's Message Batches
def test_each_provider_batch_answer_is_a_chat_span_with_its_usage(stack, client, http_receiver, provider) -> None:
    model = f"{provider}/nightly?run={uuid.uuid4().hex[:8]}"
    batch = submit_batch(client, {"name": "pb", "model": model, "output_schema": SCHEMA}, 2, execution="provider")
    done = wait_for_batch(client, batch["id"], lambda b: b["status"] == "completed")
    assert done["counts"]["succeeded"] == 2
    submitted = batch_request_span(http_receiver, batch["id"])
    lines = [json.loads(line) for line in client.get(f"/batches/{batch['id']}/results").text.splitlines()]
    usage = {line["custom_id"]: line["result"]["usage"] for line in lines}

    for custom_id, trace_id in item_traces(stack, batch["id"]).items():
        spans = spans_by_kind(http_receiver, trace_id, internal=1, client=1)
        (item,), (chat,) = spans["internal"], spans["client"]
        assert (item.name, item.parent_span_id) == ("conveyor.batch_answer", "")
        assert item.links == ((submitted.trace_id, submitted.span_id),)
        assert item.attributes["conveyor.job.status"] == "succeeded"
        assert (chat.name, chat.parent_span_id) == (f"chat {model.partition('/')[2]}", item.span_id)
        assert chat.attributes["conveyor.provider_batch"] is True
        assert chat.attributes["gen_ai.usage.input_tokens"] == usage[custom_id]["input_tokens"] > 0
        assert chat.attributes["gen_ai.usage.output_tokens"] == usage[custom_id]["output_tokens"] > 0
