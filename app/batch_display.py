"""How `conveyor batch` shows a batch: the live progress line of `submit --wait` (done/total, failed,
rate, ETA), the summary of `status`, and refused lines.

A dozen lines of rendering do not justify a dependency (tqdm, rich): the line is redrawn in place on
a terminal, and written as a plain line every few seconds (and at the end) when output is a file or
a pipe, so logs and CI output stay readable.
"""

from __future__ import annotations

import shutil
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TextIO

from app.batch_client import Batch, InvalidItem

BAR_WIDTH = 24


@dataclass(frozen=True)
class Sample:
    at: float  # monotonic seconds
    done: int


class RateMeter:
    """Items per second over the last `window` seconds of samples, so the rate follows changes in
    pace (a rate limit, a slower model) instead of averaging the whole run."""

    def __init__(self, window: float = 15.0) -> None:
        self.window = window
        self._samples: deque[Sample] = deque()

    def add(self, at: float, done: int) -> None:
        self._samples.append(Sample(at, done))
        while len(self._samples) > 2 and at - self._samples[1].at >= self.window:
            self._samples.popleft()

    def rate(self) -> float | None:
        """None until two samples at least a second apart exist."""
        if len(self._samples) < 2:
            return None
        first, last = self._samples[0], self._samples[-1]
        span = last.at - first.at
        return (last.done - first.done) / span if span >= 1.0 else None


def eta_seconds(remaining: int, rate: float | None, server_estimate: float | None) -> float | None:
    """Seconds left: the observed rate when items are finishing, else the server's estimate."""
    if remaining <= 0:
        return 0.0
    if rate and rate > 0:
        return remaining / rate
    return server_estimate


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def render_line(batch: Batch, rate: float | None, eta: float | None) -> str:
    """`[#######.........] 1,234/10,000  12%  failed 3  480.2 items/s  ETA 18s  running`"""
    counts = batch.counts
    share = counts.done / counts.total if counts.total else 0.0
    filled = min(BAR_WIDTH, int(share * BAR_WIDTH))
    bar = "#" * filled + "." * (BAR_WIDTH - filled)
    parts = [
        f"[{bar}] {counts.done:,}/{counts.total:,}",
        f"{share:4.0%}",
        f"failed {counts.failed:,}",
        f"{rate:,.1f} items/s" if rate is not None else "- items/s",
        f"ETA {format_duration(0 if batch.ended else eta)}",
        batch.status,
    ]
    if counts.cancelled:
        parts.insert(3, f"cancelled {counts.cancelled:,}")
    return "  ".join(parts)


class ProgressDisplay:
    """Feeds each polled batch into the rate meter and draws the line on `stream`."""

    def __init__(
        self,
        stream: TextIO,
        *,
        interactive: bool | None = None,
        log_every: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream
        self.interactive = stream.isatty() if interactive is None else interactive
        self.log_every = log_every
        self.clock = clock
        self.meter = RateMeter()
        self._last_logged: float | None = None
        self._last_line = ""
        self._width = 0

    def update(self, batch: Batch) -> str:
        now = self.clock()
        self.meter.add(now, batch.counts.done)
        rate = self.meter.rate()
        line = render_line(
            batch, rate, eta_seconds(batch.counts.total - batch.counts.done, rate, batch.estimated_seconds_remaining)
        )
        if self.interactive:
            shown = line[: shutil.get_terminal_size().columns - 1]  # a wrapped line cannot be redrawn
            self.stream.write("\r" + shown.ljust(self._width))
            self._width = len(shown)
            self.stream.flush()
        elif batch.ended or self._last_logged is None or now - self._last_logged >= self.log_every:
            if line != self._last_line:
                self.stream.write(line + "\n")
                self.stream.flush()
            self._last_logged = now
        self._last_line = line
        return line

    def finish(self) -> None:
        """End the in-place line so what follows starts on a line of its own."""
        if self.interactive and self._width:
            self.stream.write("\n")
            self.stream.flush()
            self._width = 0


def summary(batch: Batch) -> str:
    """A readable account of a batch, with the commands that come next."""
    c, usage, cost = batch.counts, batch.usage, batch.cost
    lines = [
        f"batch {batch.id}: {batch.status}" + (f" in {_took(batch)}" if _took(batch) else ""),
        f"  items    {c.total:,} total: {c.succeeded:,} succeeded, {c.failed:,} failed, {c.cancelled:,} cancelled, "
        f"{c.running:,} running, {c.queued:,} queued",
        f"  usage    {usage.total_tokens:,} tokens ({usage.input_tokens:,} in, {usage.output_tokens:,} out), "
        f"cost ${cost.total:.4f}",
        f"  created  {batch.created_at or '-'}  started {batch.started_at or '-'}  finished {batch.finished_at or '-'}",
    ]
    if not batch.ended and batch.estimated_seconds_remaining is not None:
        lines.append(f"  time left about {format_duration(batch.estimated_seconds_remaining)}")
    if batch.skipped:
        lines.append(f"  skipped  {batch.skipped:,} invalid lines (`status --json` lists them)")
    if batch.metadata:
        lines.append("  metadata " + ", ".join(f"{k}={v}" for k, v in batch.metadata.items()))
    if c.failed:
        lines.append(
            f"  {c.failed:,} items failed: `conveyor batch results {batch.id} --status failed -o failed.jsonl` "
            f"shows why, `conveyor batch retry {batch.id}` runs them again"
        )
    if c.succeeded or c.failed:
        lines.append(f"  results: `conveyor batch results {batch.id} -o results.jsonl`")
    return "\n".join(lines)


def _took(batch: Batch) -> str:
    """How long a finished batch ran; empty while it runs or when the timestamps do not parse."""
    try:
        started = datetime.fromisoformat(batch.started_at or batch.created_at or "")
        return format_duration((datetime.fromisoformat(batch.finished_at or "") - started).total_seconds())
    except (ValueError, TypeError):  # TypeError: one timestamp with a zone, one without
        return ""


def invalid_lines(items: list[InvalidItem], count: int, *, limit: int) -> str:
    """`  line 4 (a4): input: 'text' is a required property`, one a line, then how many more."""
    lines = [
        f"  line {item.line}{f' ({item.custom_id})' if item.custom_id else ''}: {item.reason}" for item in items[:limit]
    ]
    if count > min(limit, len(items)):
        lines.append(f"  ... and {count - min(limit, len(items)):,} more")
    return "\n".join(lines)
