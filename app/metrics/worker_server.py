"""A worker's own process metrics on `CONVEYOR_WORKER_METRICS_PORT`: prometheus_client's HTTP server
(a thread) over a registry of the process collector (CPU seconds, resident memory, open files) and
this worker's event-loop lag and calls in flight. The cluster's figures are on the API's `/metrics`;
these are per process, to be scraped from each worker (deploy/prometheus.yml)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, ProcessCollector, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger("conveyor.metrics")

LAG_PROBE_SECONDS = 0.5


class LoopLag:
    """How late the event loop wakes a sleeper: the time a ready coroutine waits for the loop."""

    def __init__(self) -> None:
        self.last = 0.0
        self.worst = 0.0  # since the last scrape

    async def probe(self, every: float = LAG_PROBE_SECONDS) -> None:
        loop = asyncio.get_running_loop()
        while True:
            asked = loop.time()
            await asyncio.sleep(every)
            self.last = max(0.0, loop.time() - asked - every)
            self.worst = max(self.worst, self.last)

    def take_worst(self) -> float:
        worst, self.worst = max(self.worst, self.last), 0.0
        return worst


class WorkerProcessCollector(Collector):
    def __init__(self, lag: LoopLag, in_flight: Callable[[], int]) -> None:
        self.lag = lag
        self.in_flight = in_flight

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(
            "conveyor_worker_event_loop_lag_seconds",
            "How late this worker's event loop last woke a sleeping coroutine.",
            value=self.lag.last,
        )
        yield GaugeMetricFamily(
            "conveyor_worker_event_loop_lag_max_seconds",
            "The worst event-loop lag this worker saw since the previous scrape.",
            value=self.lag.take_worst(),
        )
        yield GaugeMetricFamily(
            "conveyor_worker_calls_in_flight", "Jobs this worker process is running now.", value=self.in_flight()
        )


def serve_worker_metrics(
    host: str, port: int, loop: asyncio.AbstractEventLoop, in_flight: Callable[[], int]
) -> CollectorRegistry | None:
    """Start the server and the lag probe on `loop`; None (logged) when the port cannot be bound."""
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    lag = LoopLag()
    registry.register(WorkerProcessCollector(lag, in_flight))
    try:
        start_http_server(port, addr=host, registry=registry)
    except OSError:
        log.warning("worker metrics port could not be bound; no process metrics", extra={"port": port}, exc_info=True)
        return None
    asyncio.run_coroutine_threadsafe(lag.probe(), loop)
    log.info("worker metrics served", extra={"host": host, "port": port})
    return registry
