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


def fake_provider_counter(model: str) -> str:
    return f"{PREFIX}:fake:{model}"


def worker_presence(hostname: str, pid: int) -> str:
    """Set by a worker once it consumes from its queues (refreshed by the sweeper)."""
    return f"{PREFIX}:worker:{hostname}:{pid}"


WORKER_PRESENCE_PATTERN = f"{PREFIX}:worker:*"
