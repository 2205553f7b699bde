"""Every Redis key and channel Conveyor uses, spelled in one place."""

from __future__ import annotations

PREFIX = "conveyor"


def result_cache(scope: str, digest: str) -> str:
    """A cached successful call result, scoped per project."""
    return f"{PREFIX}:cache:{scope}:{digest}"


def job_done_channel(job_id: str) -> str:
    """Pub/sub channel on which a worker announces that a job reached a final state."""
    return f"{PREFIX}:job:{job_id}:done"


JOB_DONE_PATTERN = f"{PREFIX}:job:*:done"


def job_id_from_done_channel(channel: str) -> str:
    return channel[len(f"{PREFIX}:job:") : -len(":done")]


def job_stream_channel(job_id: str) -> str:
    """Pub/sub channel carrying a running job's streamed output deltas."""
    return f"{PREFIX}:job:{job_id}:stream"


STREAMS_IDLE_CHANNEL = f"{PREFIX}:streams:idle"
"""Never published to: the API's stream hub stays subscribed to it while no stream is open."""


def job_cancel_channel(job_id: str) -> str:
    """Pub/sub channel on which the API tells workers to abandon a running job."""
    return f"{PREFIX}:job:{job_id}:cancel"


JOB_CANCEL_PATTERN = f"{PREFIX}:job:*:cancel"


def job_id_from_cancel_channel(channel: str) -> str:
    return channel[len(f"{PREFIX}:job:") : -len(":cancel")]


def fake_provider_counter(model: str) -> str:
    return f"{PREFIX}:fake:{model}"


def worker_presence(hostname: str, pid: int) -> str:
    """Set by a worker once it consumes from its queues, with a short TTL it keeps refreshing
    (workers/presence.py): a killed worker's key lapses, and `conveyor_workers` counts the live ones."""
    return f"{PREFIX}:worker:{hostname}:{pid}"


WORKER_PRESENCE_PATTERN = f"{PREFIX}:worker:*"


def rate_limit_budget(scope: str) -> str:
    """Hash: request and token pacing (GCRA arrival times) and the 429 penalty of a model + provider key.

    The braces are a Redis Cluster hash tag: a scope's keys share a slot, as one Lua script uses them all."""
    return f"{PREFIX}:ratelimit:{{{scope}}}:budget"


def rate_limit_slots(scope: str) -> str:
    """Sorted set of a model + provider key's leased concurrency slots, scored by lease expiry (Redis time)."""
    return f"{PREFIX}:ratelimit:{{{scope}}}:slots"


BATCH_DISPATCH_LOCK = f"{PREFIX}:batch:dispatch-lock"
"""Held by the one worker whose periodic duties top up batch windows this round (others skip the round)."""

BATCH_SUBMITTED_CHANNEL = f"{PREFIX}:batch:submitted"
"""Pub/sub: the id of each batch the API has just written, so a worker starts dispatching it at once
rather than at its next regular round (workers/batch_starts.py)."""

BATCH_CAPACITY = f"{PREFIX}:batch:capacity"
"""Hash: `host:pid` of each worker consuming the batch queue → `threads:expires_epoch` (refreshed by its
periodic duties)."""

PROVIDER_BATCH_LOCK = f"{PREFIX}:batch:provider-batch-lock"
"""Held (and refreshed) by the one worker running provider-batch rounds (workers/tasks/provider_batches.py)."""

METRICS_COUNTS = f"{PREFIX}:metrics:counts"
"""Hash: the cluster's Prometheus counters and histogram buckets, one field each (app/metrics/families.py
spells the fields); every process adds to it in round trips it already makes (app/metrics/counts.py)."""
