"""Prometheus metrics for the whole cluster, and per worker process.

Counters and histogram buckets live in one Redis hash (`keys.METRICS_COUNTS`) that every process adds
to inside Redis round trips it already makes: the API's enqueue, a worker's job-ending announcement,
a cancellation's announcement. Gauges (queue depth, jobs and batches in progress, workers) are read
when Prometheus scrapes `GET /metrics` (app/api/routes/prometheus.py), so any API process answers for
the cluster. A worker started with `CONVEYOR_WORKER_METRICS_PORT` also serves its own process's
figures (CPU, memory, event-loop lag, calls in flight) on that port (app/metrics/worker_server.py).
"""
