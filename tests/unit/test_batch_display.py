"""How `conveyor batch` shows a batch: the progress line of `submit --wait` (rate over a sliding window,
ETA, redrawn in place on a terminal, a line every few seconds in a log), the summary, refused lines."""

from __future__ import annotations

import io

from app.batch_client import Batch, InvalidItem
from app.batch_display import (
    ProgressDisplay,
    RateMeter,
    eta_seconds,
    format_duration,
    invalid_lines,
    render_line,
    summary,
)
from tests.unit.manual_clock import ManualClock


def batch(status: str = "running", *, total: int = 1000, succeeded: int = 0, failed: int = 0, **extra) -> Batch:
    counts = {"total": total, "succeeded": succeeded, "failed": failed, "queued": total - succeeded - failed}
    return Batch.model_validate({"id": "b1", "status": status, "counts": counts, **extra})


def test_rate_needs_two_samples_a_second_apart_then_follows_the_recent_window():
    meter = RateMeter(window=10.0)
    assert meter.rate() is None
    meter.add(0.0, 0)
    meter.add(0.5, 50)
    assert meter.rate() is None  # half a second says little
    for second in range(1, 21):  # 100 items/s for 20 s...
        meter.add(float(second), 100 * second)
    assert meter.rate() == 100.0
    for second in range(21, 41):  # ...then 10 items/s: the old pace has left the window
        meter.add(float(second), 2000 + 10 * (second - 20))
    assert meter.rate() == 10.0


def test_eta_uses_the_observed_rate_else_the_server_estimate():
    assert eta_seconds(1000, 50.0, server_estimate=999.0) == 20.0
    assert eta_seconds(1000, None, server_estimate=42.0) == 42.0
    assert eta_seconds(1000, 0.0, server_estimate=None) is None  # nothing finished yet, no estimate
    assert eta_seconds(0, None, None) == 0.0


def test_durations_read_naturally():
    assert [format_duration(s) for s in (None, 0, 4.6, 65, 3599, 3600, 7322)] == [
        "?",
        "0s",
        "5s",
        "1m05s",
        "59m59s",
        "1h00m",
        "2h02m",
    ]


def test_the_line_shows_done_total_failed_rate_and_eta():
    line = render_line(batch(total=10_000, succeeded=2_400, failed=100), rate=480.0, eta=15.6)
    assert "[######" in line and "2,500/10,000" in line and "25%" in line
    assert "failed 100" in line and "480.0 items/s" in line and "ETA 16s" in line and "running" in line
    waiting = render_line(batch("validating"), rate=None, eta=None)
    assert "0/1,000" in waiting and "- items/s" in waiting and "ETA ?" in waiting
    ended = render_line(batch("completed", succeeded=1000), rate=None, eta=None)
    assert "[" + "#" * 24 + "]" in ended and "100%" in ended and "ETA 0s" in ended


def test_on_a_terminal_the_line_is_redrawn_in_place():
    out, clock = io.StringIO(), ManualClock(100.0)
    display = ProgressDisplay(out, interactive=True, clock=clock)
    display.update(batch(succeeded=0))
    clock.now += 2
    display.update(batch(succeeded=200))
    display.finish()
    text = out.getvalue()
    assert text.count("\r") == 2 and text.endswith("\n") and text.count("\n") == 1
    assert "200/1,000" in text and "100.0 items/s" in text and "ETA 8s" in text


def test_in_a_log_a_line_every_few_seconds_and_always_the_last():
    out, clock = io.StringIO(), ManualClock(100.0)
    display = ProgressDisplay(out, interactive=False, log_every=5.0, clock=clock)
    for done in range(0, 1000, 100):  # one poll a second for 10 s
        display.update(batch(succeeded=done))
        clock.now += 1
    display.update(batch("completed", succeeded=1000))
    display.finish()
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert len(lines) == 3  # at 0 s, at 5 s, and the end
    assert "0/1,000" in lines[0] and "500/1,000" in lines[1]
    assert "1,000/1,000" in lines[-1] and "completed" in lines[-1]


def test_the_summary_counts_usage_duration_and_next_commands():
    done = batch(
        "completed",
        total=10,
        succeeded=8,
        failed=2,
        usage={"input_tokens": 1200, "output_tokens": 300, "total_tokens": 1500},
        cost={"generation": 0.01, "platform": 0.001, "total": 0.011},
        created_at="2026-01-01T00:00:00Z",
        started_at="2026-01-01T00:00:01+00:00",
        finished_at="2026-01-01T00:03:06+00:00",
        metadata={"team": "nlp"},
    )
    text = summary(done)
    assert text.splitlines()[0] == "batch b1: completed in 3m05s"
    assert "10 total: 8 succeeded, 2 failed, 0 cancelled" in text
    assert "1,500 tokens (1,200 in, 300 out), cost $0.0110" in text and "metadata team=nlp" in text
    assert "conveyor batch results b1 --status failed" in text and "conveyor batch retry b1" in text
    running = summary(batch(total=10, succeeded=5, estimated_seconds_remaining=90.0, started_at="2026-01-01T00:00:01"))
    assert running.splitlines()[0] == "batch b1: running" and "time left about 1m30s" in running
    assert "retry" not in running


def test_refused_lines_are_listed_by_number_then_how_many_more():
    items = [InvalidItem(line=2, reason="not JSON"), InvalidItem(line=4, custom_id="a4", reason="input: bad")]
    assert invalid_lines(items, 2, limit=20) == "  line 2: not JSON\n  line 4 (a4): input: bad"
    assert invalid_lines(items, 150, limit=1) == "  line 2: not JSON\n  ... and 149 more"
