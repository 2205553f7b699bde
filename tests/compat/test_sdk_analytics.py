"""Usage analytics through the official `opperai` SDK: buckets add up to the recorded attempt spans."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from opperai import Opper, errors, models
from pydantic import BaseModel
from sqlalchemy import select

from app.store.tables import Span


class Answer(BaseModel):
    answer: str


@pytest.fixture
def opper(stack, key) -> Opper:
    return Opper(http_bearer=key, server_url=stack.v2)


def attempt_spans(stack, call_span_ids: list[str]) -> list[Span]:
    with stack.db.transaction() as session:
        return list(session.scalars(select(Span).where(Span.parent_id.in_(call_span_ids), Span.type == "generation")))


def test_usage_buckets_add_up_to_the_attempt_spans(stack, opper):
    run = uuid.uuid4().hex
    calls = [
        opper.call(name="a", input="one", tags={"user": "alice", "env": "prod"}),
        opper.call(name="a", input="two", tags={"user": "bob", "env": "prod"}),
        # a re-asked attempt: two generation spans, both billed
        opper.call(
            name="b",
            input="three",
            output_schema=Answer,
            model=f"openai/gpt-4o-mini?schema_violation=first&run={run}",
            tags={"user": "alice"},
        ),
        opper.call(name="c", input="four", model="anthropic/claude-3-5-haiku-latest", tags={"user": "carol"}),
    ]
    spans = attempt_spans(stack, [c.span_id for c in calls])
    assert len(spans) == 5
    now = datetime.now(UTC)
    window = {"from_date": now - timedelta(hours=2), "to_date": now + timedelta(hours=2)}

    for granularity in (models.Granularity.MINUTE, models.Granularity.HOUR, models.Granularity.DAY):
        items = opper.analytics.get_usage(
            **window, granularity=granularity, fields=["total_tokens", "completion_tokens", "prompt_tokens"]
        )
        assert items, granularity
        extras = [item.additional_properties for item in items]
        assert sum(e["total_tokens"] for e in extras) == sum(s.total_tokens for s in spans)
        assert sum(e["completion_tokens"] for e in extras) == sum(s.output_tokens for s in spans)
        assert sum(e["prompt_tokens"] for e in extras) == sum(s.input_tokens for s in spans)
        total_cost = sum(Decimal(item.cost) for item in items)
        expected_cost = sum(s.cost_generation + s.cost_platform for s in spans)
        assert float(total_cost) == pytest.approx(expected_cost, abs=1e-9) and expected_cost > 0
        assert sum(c.cost["total"] for c in calls) == pytest.approx(expected_cost, abs=1e-9)
        assert all(item.time_bucket.tzinfo is not None for item in items)
        assert [i.time_bucket for i in items] == sorted(i.time_bucket for i in items)

    by_user = opper.analytics.get_usage(**window, granularity="year", fields=["total_tokens"], group_by=["user"])
    totals = {item.additional_properties["user"]: item.additional_properties["total_tokens"] for item in by_user}
    expected: dict[str, int] = {}
    for span in spans:
        expected[span.tags["user"]] = expected.get(span.tags["user"], 0) + span.total_tokens
    assert totals == expected

    by_model = opper.analytics.get_usage(**window, granularity="month", group_by=["model", "env"])
    keys = {(i.additional_properties["model"], i.additional_properties["env"]) for i in by_model}
    assert keys == {
        ("openai/gpt-4o-mini", "prod"),
        (f"openai/gpt-4o-mini?schema_violation=first&run={run}", None),
        ("anthropic/claude-3-5-haiku-latest", None),
    }
    haiku = next(i for i in by_model if i.additional_properties["model"].startswith("anthropic/"))
    assert Decimal(haiku.cost) > 0 and "total_tokens" not in haiku.additional_properties


def test_empty_ranges_bad_parameters_and_other_projects(stack, opper):
    opper.call(name="a", input="x")
    now = datetime.now(UTC)
    assert opper.analytics.get_usage(from_date=now - timedelta(days=400), to_date=now - timedelta(days=300)) == []
    assert opper.analytics.get_usage(from_date=now, to_date=now) == []

    with pytest.raises(errors.BadRequestError) as unknown:
        opper.analytics.get_usage(fields=["total_tokens", "vibes"])
    assert str(unknown.value.data.detail).startswith("fields: unknown field 'vibes'")
    with pytest.raises(errors.BadRequestError) as reversed_range:
        opper.analytics.get_usage(from_date=now, to_date=now - timedelta(days=1))
    assert str(reversed_range.value.data.detail).startswith("to_date: ")

    intruder = Opper(http_bearer=stack.new_key(), server_url=stack.v2)
    window = {"from_date": now - timedelta(hours=1), "to_date": now + timedelta(hours=1)}
    assert intruder.analytics.get_usage(**window) == []
    assert opper.analytics.get_usage(**window)[0].cost != "0"
