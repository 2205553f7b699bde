"""Celery glue for webhook deliveries: take the dispatched delivery, send one attempt, log it."""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import Celery

from workers.celery_app import DELIVER_WEBHOOK
from workers.runtime import WorkerRuntime

log = logging.getLogger("conveyor.webhooks")


def deliver(runtime: WorkerRuntime, delivery_id: str, token: str) -> None:
    """One attempt, by the one worker holding the dispatch token; anything else is a stale message."""
    lease = timedelta(seconds=runtime.settings.webhook_timeout_seconds + 30)
    claim = runtime.deliveries.take(delivery_id, token, lease=lease)
    if claim is None:
        log.info("webhook delivery not ours to send (duplicate or stale message)", extra={"delivery_id": delivery_id})
        return
    outcome = runtime.webhook_sender.send(claim)
    runtime.deliveries.record(claim, outcome)
    runtime.counts.webhook_attempt(outcome.status.value)
    log.info(
        "webhook attempt",
        extra={"delivery_id": delivery_id, "status": outcome.status.value, "status_code": outcome.status_code},
    )


def register_webhook_tasks(app: Celery, runtime: WorkerRuntime) -> None:
    @app.task(name=DELIVER_WEBHOOK, acks_late=True, reject_on_worker_lost=True)
    def deliver_webhook(delivery_id: str, token: str) -> None:
        deliver(runtime, delivery_id, token)
