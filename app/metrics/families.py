"""The cluster-wide metric families: names, help, labels, buckets, and how each is a field of the hash.

A counter with labels `(a, b)` is the field `name|a-value|b-value`; a histogram's bucket `i` (0-based,
the last one `+Inf`) is `name|labels...|b<i>` and its sum `name|labels...|sum`. Buckets are counted
where a value falls, not cumulatively, so one observation is one increment; the scrape sums them up.
"""

from __future__ import annotations

from dataclasses import dataclass

SEP = "|"


@dataclass(frozen=True)
class Family:
    name: str  # the Prometheus name, without `_total` for counters (prometheus_client adds it)
    help: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()  # a histogram's upper bounds, without +Inf; empty: a counter

    @property
    def is_histogram(self) -> bool:
        return bool(self.buckets)


# Seconds, from a cached answer to a batch item that waited a day for its turn.
WAIT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
WAIT_BUCKETS += (7200, 21600, 86400)
CALL_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120, 300, 600, 900)
RATE_BUCKETS = (0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)

JOBS_SUBMITTED = Family("conveyor_jobs_submitted", "Jobs accepted, by the queue they wait on.", ("queue",))
JOBS_FINISHED = Family(
    "conveyor_jobs_finished", "Jobs that reached a final state (succeeded, failed, cancelled).", ("status",)
)
QUEUE_WAIT = Family(
    "conveyor_job_queue_wait_seconds",
    "From a job's submission to a worker claiming it, for jobs that finished in a worker.",
    ("queue",),
    WAIT_BUCKETS,
)
CALL_DURATION = Family(
    "conveyor_call_duration_seconds",
    "From a worker claiming a job to its result being written (every attempt and fallback included).",
    ("queue",),
    CALL_BUCKETS,
)
MODEL_ATTEMPTS = Family(
    "conveyor_model_attempts", "Requests to a model, by outcome (success or error).", ("model", "outcome")
)
TOKENS = Family("conveyor_tokens", "Tokens used, by model and type (input, output).", ("model", "type"))
COST = Family("conveyor_cost_usd", "Cost in US dollars (generation and platform fee), by model.", ("model",))
RATE_WAIT = Family(
    "conveyor_ratelimit_wait_seconds",
    "Time a request waited for room under a model's configured rate limits (limited models only).",
    ("model",),
    RATE_BUCKETS,
)
WEBHOOKS = Family(
    "conveyor_webhook_deliveries",
    "Webhook delivery attempts, by outcome (succeeded, retrying, failed, gone).",
    ("outcome",),
)

COUNTED = (JOBS_SUBMITTED, JOBS_FINISHED, QUEUE_WAIT, CALL_DURATION, MODEL_ATTEMPTS, TOKENS, COST, RATE_WAIT, WEBHOOKS)
BY_NAME = {family.name: family for family in COUNTED}


def counter_field(family: Family, *labels: str) -> str:
    return SEP.join((family.name, *labels))


def bucket_index(buckets: tuple[float, ...], value: float) -> int:
    """The first bucket whose upper bound holds `value` (`len(buckets)`: +Inf)."""
    for index, bound in enumerate(buckets):
        if value <= bound:
            return index
    return len(buckets)


def histogram_fields(family: Family, value: float, *labels: str) -> tuple[str, str]:
    """The bucket field `value` falls in, and the sum field."""
    prefix = SEP.join((family.name, *labels))
    return f"{prefix}{SEP}b{bucket_index(family.buckets, value)}", f"{prefix}{SEP}sum"


@dataclass(frozen=True)
class Field:
    """A hash field read back: its family, label values, and for a histogram its part (`b<i>` or `sum`)."""

    family: Family
    labels: tuple[str, ...]
    part: str = ""


def parse_field(raw: str) -> Field | None:
    """None for a field no family of this version knows (written by a newer or older process)."""
    name, *rest = raw.split(SEP)
    family = BY_NAME.get(name)
    if family is None:
        return None
    width = len(family.labels) + (1 if family.is_histogram else 0)
    if len(rest) != width:
        return None
    if family.is_histogram:
        return Field(family, tuple(rest[:-1]), rest[-1])
    return Field(family, tuple(rest))
