"""The worker's Celery application: the port's broker client (app/queue.py) with the consumer's
reliability settings, each with its reason."""

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
    broker_client,
)


def make_celery(settings: Settings) -> Celery:
    app = broker_client(settings)
    app.conf.update(
        # Ack only after the job ran, and hand the message back if the worker process dies, so a
        # crash never loses a job. Redelivery is made harmless by the job row's lease (store/jobs.py).
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        # Reserve one message per job slot (--concurrency): with prefetch above 1 a busy worker hoards
        # jobs that an idle worker could run.
        worker_prefetch_multiplier=1,
        worker_cancel_long_running_tasks_on_connection_loss=False,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
    )
    return app
