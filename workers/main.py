"""Worker process bootstrap: settings → runtime → Celery app with tasks → worker on the LoopPool."""

from __future__ import annotations

import logging
import os
import resource
import socket
from datetime import timedelta

from celery.signals import worker_ready

from app.config import Settings
from app.gc_tuning import tune_gc
from app.logging import configure_logging
from app.metrics.worker_server import serve_worker_metrics
from app.observability import tracing
from app.queue import TaskQueue
from app.store import keys
from app.store.db import run_migrations
from app.store.job_recovery import JobRecovery
from workers import broker
from workers.batch_starts import BatchStarts
from workers.celery_app import BATCH_QUEUE, INTERACTIVE_QUEUE, WEBHOOK_QUEUE, make_celery
from workers.loop_pool import LoopTasks, loop_pool
from workers.periodic import PeriodicDuties
from workers.presence import Presence
from workers.runner import JobRunner
from workers.runtime import WorkerRuntime
from workers.tasks.batches import batch_duties, batch_support, register_batch_tasks
from workers.tasks.calls import register_call_tasks
from workers.tasks.provider_batches import ProviderBatchLoop
from workers.tasks.webhooks import register_webhook_tasks

log = logging.getLogger("conveyor.worker")


# `conveyor worker --queues`: which job queues a worker consumes. Every worker also sends webhooks.
QUEUE_CHOICES = {
    "all": (INTERACTIVE_QUEUE, BATCH_QUEUE, WEBHOOK_QUEUE),
    "interactive": (INTERACTIVE_QUEUE, WEBHOOK_QUEUE),
    "batch": (BATCH_QUEUE, WEBHOOK_QUEUE),
}


def raise_open_file_limit(wanted: int) -> None:
    """Each provider call in flight holds a socket: lift the soft limit on open files (often 1,024) towards
    the hard limit, so thousands of calls in flight do not fail with "too many open files"."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    if target < wanted:
        log.warning("open files are limited to %d: fewer provider calls can be in flight", target)


def run_worker(
    settings: Settings, *, concurrency: int | None = None, migrate: bool = True, queues: str = "all"
) -> None:
    if queues not in QUEUE_CHOICES:
        raise ValueError(f"queues must be one of {', '.join(QUEUE_CHOICES)}, not {queues!r}")
    configure_logging(settings.log_level)
    tracing.start_worker()  # when OTEL_EXPORTER_OTLP_ENDPOINT is set; before the runtime takes its observer
    raise_open_file_limit(settings.provider_max_connections + 1024)
    if migrate:
        run_migrations(settings.database_url, secret_key=settings.secret_key)
    app = make_celery(settings)
    queue = TaskQueue(app)
    runtime = WorkerRuntime.build(settings, queue)
    runtime.start()
    runtime.counts.start_flusher(runtime.redis)
    if settings.worker_metrics_port is not None:
        serve_worker_metrics(
            settings.host, settings.worker_metrics_port, runtime.loop.loop, lambda: runtime.cancels.in_flight
        )
    slots = concurrency or settings.worker_concurrency
    consumed = QUEUE_CHOICES[queues]
    member = f"{socket.gethostname()}:{os.getpid()}"
    duties = batch_duties(runtime, queue, member=member, slots=slots if BATCH_QUEUE in consumed else 0)
    runner = JobRunner(runtime, queue=queue, batches=batch_support(runtime, duties))
    loop_tasks = LoopTasks(runtime.loop)
    register_call_tasks(app, loop_tasks, runner)
    register_batch_tasks(app, loop_tasks, runner)
    # Jobs run as coroutines on the runtime's loop (workers/loop_pool.py); webhook sends on threads.
    app.conf.worker_pool = loop_pool(loop_tasks)
    # The backlog is read many messages per round trip (workers/broker.py).
    app.conf.broker_transport = broker.TRANSPORT
    app.amqp.Connection = broker.PromptlyReconnecting  # back within 5 s of Redis returning
    register_webhook_tasks(app, runtime)
    periodic = PeriodicDuties(
        JobRecovery(runtime.db),
        queue,
        settings.sweep_interval_seconds,
        deliveries=runtime.deliveries,
        dispatcher=runtime.dispatcher,
        webhook_interval_seconds=settings.webhook_poll_interval_seconds,
        batches=duties,
        stranded_after=timedelta(seconds=settings.stranded_after_seconds),
    )
    periodic.start()
    # A new batch starts at once, not at the next regular round.
    batch_starts = BatchStarts(runtime.async_redis, runtime.loop, lambda: duties.kick(at_once=True))
    batch_starts.start()
    provider_batches = ProviderBatchLoop(runtime, member)
    provider_batches.start()
    presence = Presence(runtime.redis, keys.worker_presence(socket.gethostname(), os.getpid()))

    @worker_ready.connect(weak=False)
    def announce(**_: object) -> None:
        presence.announce()

    tune_gc()
    queue_names = ",".join(consumed)
    log.info("worker starting", extra={"slots": slots, "queues": queue_names})
    try:
        # No --pool: the configured LoopPool, not prefork. A job is almost all waiting on a provider, so
        # one process holds `slots` of them in flight as coroutines.
        app.worker_main(
            [
                "worker",
                f"--concurrency={slots}",
                f"--queues={queue_names}",
                f"--loglevel={settings.log_level}",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ]
        )
    finally:
        presence.withdraw()
        duties.capacity.unregister(member)
        batch_starts.stop()
        periodic.stop()
        provider_batches.stop()
        runtime.counts.stop(runtime.redis)
        runtime.close()
        tracing.stop_worker()
