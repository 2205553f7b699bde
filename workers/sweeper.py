"""The worker's periodic duties, on one background thread.

- Jobs whose worker died go back on the queue, well before the broker's visibility timeout would.
- Webhook deliveries whose retry is due are dispatched (the schedule lives in the database, not in
  broker ETAs, which the Redis broker would hold in worker memory and redeliver after the
  visibility timeout), and deliveries whose sender died mid-send become due again.
"""

from __future__ import annotations

import logging
import threading
import time

from celery import Celery

from app.services.webhook_delivery import WebhookDispatcher
from app.store.jobs import JobRepository
from app.store.webhooks import WebhookDeliveryRepository
from workers.celery_app import INTERACTIVE_QUEUE, RUN_JOB

log = logging.getLogger("conveyor.sweeper")


class LeaseSweeper:
    def __init__(
        self,
        jobs: JobRepository,
        celery: Celery,
        interval_seconds: float,
        *,
        deliveries: WebhookDeliveryRepository | None = None,
        dispatcher: WebhookDispatcher | None = None,
        webhook_interval_seconds: float = 1.0,
    ) -> None:
        self.jobs = jobs
        self.celery = celery
        self.interval = interval_seconds
        self.deliveries = deliveries
        self.dispatcher = dispatcher
        self.webhook_interval = webhook_interval_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="conveyor-sweeper", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def sweep_once(self) -> list[str]:
        requeued = self.jobs.requeue_expired()
        for job_id in requeued:
            self.celery.send_task(RUN_JOB, args=[job_id], queue=INTERACTIVE_QUEUE)
        if requeued:
            log.warning("requeued jobs whose lease expired", extra={"count": len(requeued)})
        return requeued

    def dispatch_webhooks_once(self) -> int:
        if self.deliveries is None or self.dispatcher is None:
            return 0
        stuck = self.deliveries.requeue_stuck()
        if stuck:
            log.warning("webhook deliveries whose sender died are due again", extra={"count": stuck})
        return self.dispatcher.dispatch_due()

    def _loop(self) -> None:
        duties = [(self.interval, self.sweep_once), (self.webhook_interval, self.dispatch_webhooks_once)]
        due = [time.monotonic() + every for every, _ in duties]
        while not self._stop.wait(max(0.05, min(due) - time.monotonic())):
            now = time.monotonic()
            for index, (every, duty) in enumerate(duties):
                if now < due[index]:
                    continue
                due[index] = now + every
                try:
                    duty()
                except Exception:  # the database may be briefly away; try again next time
                    log.exception("periodic %s failed", duty.__name__)
