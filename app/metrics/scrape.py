"""`GET /metrics`: the cluster's figures, read at scrape time and rendered by prometheus_client.

Counters and histograms come from the metrics hash every process adds to (one HGETALL); gauges are
read now: queue depths (LLEN of the Celery queues), workers (their presence keys), jobs and batches in
progress and deferred batch items (the database). A custom Collector turns that snapshot into
families, so the text is prometheus_client's own exposition format.
"""

from __future__ import annotations

import hmac
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass

import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.concurrency import run_in_threadpool

from app.errors import Unauthorized
from app.metrics.families import COUNTED, JOBS_FINISHED, JOBS_SUBMITTED, WEBHOOKS, Family, parse_field
from app.metrics.worker import WEBHOOK_OUTCOMES
from app.queue import BATCH_QUEUE, INTERACTIVE_QUEUE, WEBHOOK_QUEUE
from app.store import keys
from app.store.activity import Activity, ActivityReader
from app.store.db import Database

QUEUES = (INTERACTIVE_QUEUE, BATCH_QUEUE, WEBHOOK_QUEUE)
# Label values shown at 0 before anything happened, so rate() has a start.
KNOWN = {
    JOBS_SUBMITTED.name: [(INTERACTIVE_QUEUE,), (BATCH_QUEUE,)],
    JOBS_FINISHED.name: [("succeeded",), ("failed",), ("cancelled",)],
    WEBHOOKS.name: [(outcome,) for outcome in WEBHOOK_OUTCOMES.values()],
}


@dataclass(frozen=True)
class ClusterSnapshot:
    counts: dict[str, float]
    queue_depths: dict[str, int]
    workers: int
    activity: Activity


async def read_cluster(redis: aioredis.Redis, activity: ActivityReader) -> ClusterSnapshot:
    """One pipeline (the hash and the queue lengths), a SCAN of presence keys, two counts in the database."""
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hgetall(keys.METRICS_COUNTS)
        for queue in QUEUES:
            pipe.llen(queue)
        raw, *depths = await pipe.execute()
    workers = 0
    async for _ in redis.scan_iter(match=keys.WORKER_PRESENCE_PATTERN, count=1000):
        workers += 1
    counts = {_text(field): float(value) for field, value in raw.items()}
    now = await run_in_threadpool(activity.read)
    return ClusterSnapshot(counts, dict(zip(QUEUES, map(int, depths), strict=True)), workers, now)


def render(snapshot: ClusterSnapshot) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ClusterCollector(snapshot))
    return generate_latest(registry)


class ClusterCollector(Collector):
    def __init__(self, snapshot: ClusterSnapshot) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        by_family: dict[str, dict[tuple[str, ...], dict[str, float]]] = defaultdict(lambda: defaultdict(dict))
        for raw, value in self.snapshot.counts.items():
            field = parse_field(raw)
            if field is not None:
                by_family[field.family.name][field.labels][field.part] = value
        for family in COUNTED:
            series = by_family.get(family.name, {})
            yield _histogram(family, series) if family.is_histogram else _counter(family, series)
        yield from self._gauges()

    def _gauges(self) -> Iterator[Metric]:
        snapshot = self.snapshot
        depth = GaugeMetricFamily(
            "conveyor_queue_depth",
            "Messages on each Celery queue that no worker has taken yet (the list's length). A taken message"
            " is out of it: its job runs (conveyor_jobs_in_progress), or it is a deferred batch item's"
            " delayed message, held by a worker until due (conveyor_jobs_deferred). Batch items not yet"
            " sent by the dispatcher are in neither.",
            labels=["queue"],
        )
        for queue, length in snapshot.queue_depths.items():
            depth.add_metric([queue], length)
        yield depth
        yield GaugeMetricFamily(
            "conveyor_jobs_in_progress", "Jobs running in a worker now.", value=snapshot.activity.jobs_running
        )
        yield GaugeMetricFamily(
            "conveyor_jobs_deferred",
            "Batch items sent back for lack of rate-limit room, waiting out their countdown (their delayed"
            " messages are held by workers, outside conveyor_queue_depth).",
            value=snapshot.activity.jobs_deferred,
        )
        yield GaugeMetricFamily(
            "conveyor_batches_in_progress",
            "Batches running or cancelling (items still to end).",
            value=snapshot.activity.batches_running,
        )
        yield GaugeMetricFamily(
            "conveyor_workers", "Worker processes consuming their queues (presence keys).", value=snapshot.workers
        )


def _counter(family: Family, series: dict[tuple[str, ...], dict[str, float]]) -> CounterMetricFamily:
    metric = CounterMetricFamily(family.name, family.help, labels=list(family.labels))
    values = {labels: parts[""] for labels, parts in series.items()}
    for labels in KNOWN.get(family.name, []):
        values.setdefault(labels, 0.0)
    for labels, value in sorted(values.items()):
        metric.add_metric(list(labels), value)
    return metric


def _histogram(family: Family, series: dict[tuple[str, ...], dict[str, float]]) -> HistogramMetricFamily:
    metric = HistogramMetricFamily(family.name, family.help, labels=list(family.labels))
    bounds = [*map(_bound, family.buckets), "+Inf"]
    for labels, parts in sorted(series.items()):
        cumulative, buckets = 0.0, []
        for index, bound in enumerate(bounds):
            cumulative += parts.get(f"b{index}", 0.0)
            buckets.append((bound, cumulative))
        metric.add_metric(list(labels), buckets, parts.get("sum", 0.0))
    return metric


def _bound(value: float) -> str:
    return repr(float(value))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def check_token(token: str, authorization: str | None) -> None:
    """With CONVEYOR_METRICS_TOKEN set, the scrape must bring it as a bearer token (compared in constant time)."""
    if not token:
        return
    scheme, _, given = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise Unauthorized(
            "metrics token required",
            detail="send the header `Authorization: Bearer <CONVEYOR_METRICS_TOKEN>` to read /metrics",
        )


async def cluster_metrics(redis: aioredis.Redis, db: Database) -> bytes:
    """The exposition text for the whole cluster, as of now."""
    return render(await read_cluster(redis, ActivityReader(db)))
