"""The metrics hash's field spelling and the bounded model label, without I/O."""

from __future__ import annotations

from app.metrics.counts import Counts
from app.metrics.families import CALL_DURATION, JOBS_FINISHED, bucket_index, parse_field
from app.metrics.models import ModelLabels


def test_an_observation_lands_in_one_bucket_and_the_sum():
    counts = Counts()
    counts.observe(CALL_DURATION, 0.3, "conveyor.interactive")
    counts.observe(CALL_DURATION, 10_000, "conveyor.interactive")  # past the last bound: +Inf
    assert bucket_index(CALL_DURATION.buckets, 0.3) == CALL_DURATION.buckets.index(0.5)
    fields = {parse_field(raw).part: value for raw, value in counts.deltas.items()}
    assert fields == {"b3": 1, f"b{len(CALL_DURATION.buckets)}": 1, "sum": 10_000.3}


def test_fields_round_trip_and_unknown_ones_are_skipped():
    counts = Counts()
    counts.inc(JOBS_FINISHED, "failed", by=2)
    (raw,) = counts.deltas
    parsed = parse_field(raw)
    assert (parsed.family, parsed.labels) == (JOBS_FINISHED, ("failed",))
    assert counts.args() == [raw, 2]
    assert parse_field("conveyor_from_a_newer_version|x") is None
    assert parse_field("conveyor_jobs_finished|too|many") is None


def test_model_labels_are_bounded_to_configured_names_and_providers():
    label = ModelLabels(["openai/gpt-4o-mini"], ["openai", "anthropic"])
    assert label("openai/gpt-4o-mini") == "openai/gpt-4o-mini"
    assert label("openai/gpt-4o-mini?latency_ms=5") == "openai/gpt-4o-mini"
    assert label("openai/anything-a-caller-types") == "openai/other"
    assert label("nobody/knows") == label("no-slash-at-all") == "other"
    assert len({label(f"openai/m{i}") for i in range(50_000)}) == 1
