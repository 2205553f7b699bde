"""Analytics bucketing, trace listing and span/metric storage on both backends (Postgres and SQLite),
with spans inserted at chosen times around bucket boundaries."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

from app.errors import Conflict, NotFound
from app.services.analytics import UsageRequest, usage_report
from app.store.analytics import Granularity, UsageQuery, UsageRepository
from app.store.metrics import MetricPatch, MetricRepository, NewMetric
from app.store.spans import NewSpan, SpanPatch, SpanRepository
from app.store.tables import Project, Span
from app.store.traces import TraceRepository


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def add_span(db, project_id: str, start: datetime, **values) -> Span:
    values = {
        "trace_id": str(uuid.uuid4()),
        "name": "openai/gpt-4o-mini",
        "type": "generation",
        "model": "openai/gpt-4o-mini",
        "input_tokens": 10,
        "output_tokens": 5,
        "total_tokens": 15,
        "cost_generation": 0.001,
        "cost_platform": 0.0001,
        **values,
    }
    with db.transaction() as session:
        span = Span(project_id=project_id, start_time=start, end_time=start + timedelta(milliseconds=5), **values)
        session.add(span)
        session.flush()
        return span


def buckets(db, project_id: str, granularity: Granularity, start: str, end: str, **query):
    return UsageRepository(db).buckets(UsageQuery(project_id, at(start), at(end), granularity, **query))


BOUNDARIES = [
    (Granularity.minute, "2025-03-31 10:00:59.999999", "2025-03-31 10:01:00"),
    (Granularity.hour, "2025-03-31 10:59:59.999999", "2025-03-31 11:00:00"),
    (Granularity.day, "2025-03-31 23:59:59.999999", "2025-04-01 00:00:00"),
    (Granularity.month, "2025-03-31 23:59:59.999999", "2025-04-01 00:00:00"),
    (Granularity.year, "2024-12-31 23:59:59.999999", "2025-01-01 00:00:00"),
]


@pytest.mark.parametrize(("granularity", "before", "after"), BOUNDARIES)
def test_spans_either_side_of_a_boundary_land_in_adjacent_buckets(shared_db, project, granularity, before, after):
    add_span(shared_db, project, at(before), total_tokens=1)
    add_span(shared_db, project, at(after), total_tokens=2)
    add_span(shared_db, project, at(after) + timedelta(microseconds=1), total_tokens=4)
    found = buckets(shared_db, project, granularity, "2024-01-01", "2026-01-01", columns=("total_tokens",))
    truncated = {
        Granularity.minute: dict(second=0, microsecond=0),
        Granularity.hour: dict(minute=0, second=0, microsecond=0),
        Granularity.day: dict(hour=0, minute=0, second=0, microsecond=0),
        Granularity.month: dict(day=1, hour=0, minute=0, second=0, microsecond=0),
        Granularity.year: dict(month=1, day=1, hour=0, minute=0, second=0, microsecond=0),
    }[granularity]
    assert [(b.time_bucket, b.sums["total_tokens"]) for b in found] == [
        (at(before).replace(**truncated), 1),
        (at(after), 6),
    ]
    assert all(b.time_bucket.tzinfo is not None and b.time_bucket.utcoffset() == timedelta(0) for b in found)


def test_range_is_inclusive_at_from_and_exclusive_at_to(shared_db, project):
    add_span(shared_db, project, at("2025-05-01 00:00:00"), total_tokens=1)  # == from: in
    add_span(shared_db, project, at("2025-05-31 23:59:59.999999"), total_tokens=2)  # in
    add_span(shared_db, project, at("2025-06-01 00:00:00"), total_tokens=4)  # == to: out
    add_span(shared_db, project, at("2025-04-30 23:59:59.999999"), total_tokens=8)  # before: out
    found = buckets(shared_db, project, Granularity.month, "2025-05-01", "2025-06-01", columns=("total_tokens",))
    assert [(b.time_bucket, b.sums["total_tokens"]) for b in found] == [(at("2025-05-01"), 3)]
    assert buckets(shared_db, project, Granularity.day, "2025-07-01", "2025-08-01") == []


def test_an_offset_timestamp_is_bucketed_by_its_utc_time(shared_db, project):
    plus_two = timezone(timedelta(hours=2))
    add_span(shared_db, project, datetime(2025, 4, 1, 1, 30, tzinfo=plus_two))  # 2025-03-31 23:30 UTC
    found = buckets(shared_db, project, Granularity.day, "2025-03-01", "2025-05-01")
    assert [b.time_bucket for b in found] == [at("2025-03-31")]


def test_sums_cost_and_groups_count_only_this_projects_generation_spans(shared_db, project):
    other = Project(name=f"other-{uuid.uuid4().hex[:8]}")
    with shared_db.transaction() as session:
        session.add(other)
        session.flush()
        other_id = other.id
    day = at("2025-02-10 12:00:00")
    add_span(shared_db, project, day, tags={"env": "prod", "project.name": "a"}, input_tokens=100, output_tokens=7)
    add_span(shared_db, project, day, tags={"env": "prod", "project.name": "a"}, reasoning_tokens=3)
    add_span(shared_db, project, day, tags={"env": "dev"}, model="anthropic/claude-3-5-haiku-latest")
    add_span(shared_db, project, day, type="call", total_tokens=999, cost_generation=9.0)  # a call repeats its attempts
    add_span(shared_db, other_id, day, total_tokens=777, cost_generation=7.0)

    (total,) = buckets(shared_db, project, Granularity.day, "2025-02-01", "2025-03-01", columns=("total_tokens",))
    assert total.sums == {"total_tokens": 45}
    assert total.cost == pytest.approx(3 * 0.0011)

    grouped = buckets(
        shared_db,
        project,
        Granularity.month,
        "2025-02-01",
        "2025-03-01",
        columns=("input_tokens", "output_tokens", "reasoning_tokens"),
        group_by=("model", "env", "project.name"),
    )
    by_group = {tuple(b.groups.values()): b for b in grouped}
    assert set(by_group) == {
        ("openai/gpt-4o-mini", "prod", "a"),
        ("anthropic/claude-3-5-haiku-latest", "dev", None),
    }
    prod = by_group[("openai/gpt-4o-mini", "prod", "a")]
    assert prod.sums == {"input_tokens": 110, "output_tokens": 12, "reasoning_tokens": 3}
    assert prod.cost == pytest.approx(0.0022)


def test_usage_report_formats_items_with_aliases_and_string_cost(shared_db, project):
    add_span(shared_db, project, at("2025-02-10 12:00:00"), tags={"user": "u1"})
    add_span(
        shared_db, project, at("2025-02-11 12:00:00"), tags={"user": "u2"}, cost_generation=0.00002, cost_platform=0
    )
    request = UsageRequest(
        from_date=at("2025-02-01"),
        to_date=at("2025-03-01"),
        granularity="day",
        fields=("completion_tokens", "prompt_tokens", "total_tokens"),
        group_by=("user",),
    )
    items = [item.model_dump(mode="json") for item in usage_report(UsageRepository(shared_db), project, request)]
    assert items == [
        {
            "time_bucket": "2025-02-10T00:00:00Z",
            "cost": "0.0011",
            "user": "u1",
            "completion_tokens": 5,
            "prompt_tokens": 10,
            "total_tokens": 15,
        },
        {
            "time_bucket": "2025-02-11T00:00:00Z",
            "cost": "0.00002",
            "user": "u2",
            "completion_tokens": 5,
            "prompt_tokens": 10,
            "total_tokens": 15,
        },
    ]


def test_trace_listing_groups_spans_by_trace_newest_first(shared_db, project):
    traces, spans = TraceRepository(shared_db), SpanRepository(shared_db)
    old_trace, new_trace = str(uuid.uuid4()), str(uuid.uuid4())
    root = add_span(shared_db, project, at("2025-01-01 10:00:00"), trace_id=old_trace, type="workflow", name="pipeline")
    call = add_span(
        shared_db,
        project,
        at("2025-01-01 10:00:01"),
        trace_id=old_trace,
        type="call",
        name="step",
        parent_id=root.id,
        total_tokens=30,
        function_id=str(uuid.uuid4()),
    )
    add_span(
        shared_db,
        project,
        at("2025-01-01 10:00:01"),
        trace_id=old_trace,
        parent_id=call.id,
        total_tokens=10,
        error="ProviderServerError: 503",
    )
    add_span(shared_db, project, at("2025-01-01 10:00:02"), trace_id=old_trace, parent_id=call.id, total_tokens=20)
    add_span(
        shared_db,
        project,
        at("2025-01-02 10:00:00"),
        trace_id=new_trace,
        type="call",
        name="other",
        error="boom",
        total_tokens=0,
    )

    heads, total = traces.page(project, name=None, offset=0, limit=10)
    assert total == 2
    assert [h.stats.trace_id for h in heads] == [new_trace, old_trace]
    newest, oldest = heads
    assert newest.stats.failed is True and newest.root.name == "other"
    assert oldest.root.id == root.id
    assert oldest.stats.total_tokens == 30  # the generation spans only
    assert oldest.stats.failed is False  # the failed attempt was recovered from
    assert oldest.stats.start_time == at("2025-01-01 10:00:00")
    assert oldest.stats.end_time == at("2025-01-01 10:00:02.005")

    named, named_total = traces.page(project, name="pipeline", offset=0, limit=10)
    assert named_total == 1 and [h.stats.trace_id for h in named] == [old_trace]
    second_page, _ = traces.page(project, name=None, offset=1, limit=1)
    assert [h.stats.trace_id for h in second_page] == [old_trace]

    # Deleting the root lifts its child to the top, and the trace stays listed.
    assert spans.delete(project, root.id) is True
    heads, total = traces.page(project, name=None, offset=0, limit=10)
    assert total == 2 and heads[1].root.id == call.id


def test_span_insert_update_and_metric_uniqueness(shared_db, project):
    spans, metrics = SpanRepository(shared_db), MetricRepository(shared_db)
    span_id = str(uuid.uuid4())
    new = NewSpan(id=span_id, project_id=project, trace_id=str(uuid.uuid4()), name="s", input={"a": [1, None]})
    assert spans.insert(new).input == {"a": [1, None]}
    assert spans.insert(new) is None  # the id is taken
    updated = spans.update(project, span_id, SpanPatch(output="done", meta=None, score=3))
    assert (updated.output, updated.meta, updated.score, updated.name) == ("done", None, 3, "s")

    metric = metrics.create(NewMetric(project, span_id, "accuracy", 0.5))
    with pytest.raises(Conflict):
        metrics.create(NewMetric(project, span_id, "accuracy", 0.9))
    other = metrics.create(NewMetric(project, span_id, "latency", 120.0, "ms"))
    with pytest.raises(Conflict):
        metrics.update(project, span_id, other.id, MetricPatch(dimension="accuracy"))
    assert metrics.update(project, span_id, metric.id, MetricPatch(value=0.75)).value == 0.75
    page, total = metrics.page(project, span_id, offset=1, limit=5)
    assert total == 2 and [m.id for m in page] == [other.id]
    with pytest.raises(NotFound):
        metrics.create(NewMetric(project, str(uuid.uuid4()), "accuracy", 1.0))

    assert spans.delete(project, span_id) is True
    assert metrics.get(project, span_id, metric.id) is None  # metrics go with their span
