"""The Celery application. The reliability settings live here, with the reason for each."""

from __future__ import annotations

from celery import Celery

from app.config import Settings
from app.queue import (  # noqa: F401 - re-exported: the worker side names queues and tasks from here too
    BATCH_QUEUE,
    DELIVER_WEBHOOK,
    INTERACTIVE_QUEUE,
    RUN_BATCH_ITEM,
    RUN_JOB,
    WEBHOOK_QUEUE,
)


def make_celery(settings: Settings) -> Celery:
    app = Celery("conveyor", broker=settings.redis_url, set_as_current=False)
    app.conf.update(
        # Ack only after the job ran, and hand the message back if the worker process dies, so a
        # crash never loses a job. Redelivery is made harmless by the job row's lease (store/jobs.py).
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        # Reserve one message per job slot (--concurrency): with prefetch above 1 a busy worker hoards
        # jobs that an idle worker could run.
        worker_prefetch_multiplier=1,
        # Redis redelivers an unacked message after this long. It must exceed the longest a job may
        # run, or a slow job would be started twice; fast recovery of crashed jobs is the sweeper's job.
        broker_transport_options={"visibility_timeout": settings.visibility_timeout_seconds},
        task_default_queue=INTERACTIVE_QUEUE,
        task_ignore_result=True,  # results live in the database, not in a Celery backend
        task_serializer="json",
        accept_content=["json"],
        broker_connection_retry_on_startup=True,
        # A worker outlives any Redis outage (Celery's default gives up after 100 attempts, ~50 min), and
        # jobs running when the connection drops keep running: their results are written to the database
        # and their messages acked once Redis is back (workers/broker.py); a redelivery meets the lease.
        broker_connection_max_retries=None,
        worker_cancel_long_running_tasks_on_connection_loss=False,
        # Pooled broker connections for publishing. (None would *disable* the pool: a new connection and
        # queue declaration per enqueued job, measured as a third of the API's CPU time per call.)
        broker_pool_limit=64,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
    )
    return app
