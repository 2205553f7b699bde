"""Traces through the official `opperai` SDK: a user span with calls under it is one trace."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from opperai import Opper, errors
from pydantic import BaseModel
from sqlalchemy import func, select

from app.store.tables import Span


class Answer(BaseModel):
    answer: str


@pytest.fixture
def opper(stack, key) -> Opper:
    return Opper(http_bearer=key, server_url=stack.v2)


def generation_tokens(stack, trace_id: str) -> int:
    with stack.db.transaction() as session:
        return session.scalar(
            select(func.sum(Span.total_tokens)).where(Span.trace_id == trace_id, Span.type == "generation")
        )


def test_a_span_with_calls_under_it_is_one_trace(stack, opper):
    name = f"pipeline-{uuid.uuid4().hex[:8]}"
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)
    root = opper.spans.create(name=name, start_time=start, input={"question": "capital of Sweden?"})
    first = opper.call(
        name="capital",
        input="Sweden",
        output_schema=Answer,
        parent_span_id=root.id,
        tags={"user": "u1"},
    )
    recovered = opper.call(
        name="capital",
        input="Norway",
        output_schema=Answer,
        parent_span_id=root.id,
        model=[f"fake/down?fail=503&run={uuid.uuid4().hex}", "openai/gpt-4o-mini"],
    )
    opper.spans.update(span_id=root.id, output="Stockholm", end_time=datetime.now(UTC) + timedelta(seconds=1))
    opper.span_metrics.create_metric(span_id=root.id, dimension="quality", value=0.9, comment="judge")

    listed = opper.traces.list(name=name)
    assert listed.meta.total_count == 1
    (summary,) = listed.data
    assert summary.id == root.trace_id and summary.name == name
    assert summary.input == json.dumps({"question": "capital of Sweden?"}) and summary.output == "Stockholm"
    assert summary.status == "success"  # the fallback recovered from the failed attempt
    assert summary.total_tokens == generation_tokens(stack, root.trace_id)
    assert summary.total_tokens == first.usage["total_tokens"] + recovered.usage["total_tokens"] > 0
    assert summary.start_time == start
    assert summary.duration_ms == int((summary.end_time - summary.start_time).total_seconds() * 1000) > 1000

    trace = opper.traces.get(trace_id=root.trace_id)
    assert (trace.id, trace.name, trace.status, trace.total_tokens) == (
        summary.id,
        name,
        "success",
        summary.total_tokens,
    )
    by_id = {span.id: span for span in trace.spans}
    assert trace.spans[0].id == root.id
    assert by_id[root.id].metrics[0].dimension == "quality" and by_id[root.id].metrics[0].value == 0.9
    calls = [span for span in trace.spans if span.type == "call"]
    assert {c.id for c in calls} == {first.span_id, recovered.span_id}
    assert all(c.parent_id == root.id for c in calls)

    first_call = by_id[first.span_id]
    assert first_call.data.input == "Sweden"  # strings go as they are; other values JSON-encoded
    assert json.loads(first_call.data.output) == first.json_payload
    assert first_call.data.function == "capital" and first_call.data.tags == ["user:u1"]
    assert first_call.data.model == "openai/gpt-4o-mini"
    assert first_call.data.total_tokens == first.usage["total_tokens"]
    assert first_call.duration_ms is not None and first_call.metrics == []
    as_span = opper.spans.get(span_id=first.span_id)
    assert (as_span.type, as_span.parent_id, as_span.trace_id, as_span.input) == (
        "call",
        root.id,
        root.trace_id,
        "Sweden",
    )

    attempts = sorted((s for s in trace.spans if s.parent_id == recovered.span_id), key=lambda s: s.start_time)
    assert [a.type for a in attempts] == ["generation", "generation"]
    assert attempts[0].error and "503" in attempts[0].error
    assert attempts[1].error is None and attempts[1].data.model == "openai/gpt-4o-mini"
    assert attempts[1].data.function == "capital"


def test_trace_status_listing_order_and_paging(stack, opper):
    tag = uuid.uuid4().hex[:8]
    with pytest.raises(errors.OpperError):
        opper.call(name=f"doomed-{tag}", input="x", model=f"fake/down?fail=503&run={tag}")
    opper.call(name=f"fine-{tag}", input="y")

    newest_first = opper.traces.list()
    assert newest_first.meta.total_count == 2
    assert [t.name for t in newest_first.data] == [f"fine-{tag}", f"doomed-{tag}"]
    assert [t.status for t in newest_first.data] == ["success", "error"]
    assert newest_first.data[1].output is None
    assert [t.name for t in opper.traces.list(offset=1, limit=1).data] == [f"doomed-{tag}"]
    assert opper.traces.list(name="no such trace").data == []

    failed = opper.traces.get(trace_id=newest_first.data[1].id)
    assert failed.status == "error" and failed.spans[0].error


def test_traces_are_invisible_to_other_projects_and_errors_are_typed(stack, opper):
    root = opper.spans.create(name="mine")
    intruder = Opper(http_bearer=stack.new_key(), server_url=stack.v2)
    assert intruder.traces.list().meta.total_count == 0
    with pytest.raises(errors.NotFoundError) as missing:
        intruder.traces.get(trace_id=root.trace_id)
    assert root.trace_id in str(missing.value.data.detail)
    with pytest.raises(errors.NotFoundError):
        opper.traces.get(trace_id="not-a-trace")
    with pytest.raises(errors.BadRequestError) as bad_limit:
        opper.traces.list(limit=0)
    assert str(bad_limit.value.data.detail).startswith("limit: ")
