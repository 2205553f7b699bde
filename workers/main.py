"""Worker process bootstrap: settings → runtime → Celery app with tasks → thread-pool worker."""

from __future__ import annotations

import logging
import os
import socket

from celery.signals import worker_ready

from app.config import Settings
from app.logging import configure_logging
from app.store import keys
from app.store.db import run_migrations
from workers.celery_app import INTERACTIVE_QUEUE, WEBHOOK_QUEUE, make_celery
from workers.runner import JobRunner
from workers.runtime import WorkerRuntime
from workers.sweeper import LeaseSweeper
from workers.tasks.calls import register_call_tasks
from workers.tasks.webhooks import register_webhook_tasks

log = logging.getLogger("conveyor.worker")


def run_worker(settings: Settings, *, concurrency: int | None = None, migrate: bool = True) -> None:
    configure_logging(settings.log_level)
    if migrate:
        run_migrations(settings.database_url)
    app = make_celery(settings)
    runtime = WorkerRuntime.build(settings, app)
    runtime.start()
    register_call_tasks(app, JobRunner(runtime))
    register_webhook_tasks(app, runtime)
    sweeper = LeaseSweeper(
        runtime.jobs,
        app,
        settings.sweep_interval_seconds,
        deliveries=runtime.deliveries,
        dispatcher=runtime.dispatcher,
        webhook_interval_seconds=settings.webhook_poll_interval_seconds,
    )
    sweeper.start()
    presence = keys.worker_presence(socket.gethostname(), os.getpid())

    @worker_ready.connect(weak=False)
    def announce(**_: object) -> None:
        runtime.redis.set(presence, "ready", ex=24 * 3600)

    threads = concurrency or settings.worker_concurrency
    queues = f"{INTERACTIVE_QUEUE},{WEBHOOK_QUEUE}"
    log.info("worker starting", extra={"threads": threads, "queues": queues})
    try:
        # Threads, not prefork: a job is almost all waiting on a provider, and the waiting happens on
        # the runtime's event loop; a thread per in-flight job costs tens of kilobytes.
        app.worker_main(
            [
                "worker",
                "--pool=threads",
                f"--concurrency={threads}",
                f"--queues={queues}",
                f"--loglevel={settings.log_level}",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ]
        )
    finally:
        runtime.redis.delete(presence)
        sweeper.stop()
        runtime.close()
