"""Puts jobs whose worker died back on the queue, well before the broker's visibility timeout would."""

from __future__ import annotations

import logging
import threading

from celery import Celery

from app.store.jobs import JobRepository
from workers.celery_app import INTERACTIVE_QUEUE, RUN_JOB

log = logging.getLogger("conveyor.sweeper")


class LeaseSweeper:
    def __init__(self, jobs: JobRepository, celery: Celery, interval_seconds: float) -> None:
        self.jobs = jobs
        self.celery = celery
        self.interval = interval_seconds
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

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.sweep_once()
            except Exception:  # the database may be briefly away; try again next interval
                log.exception("lease sweep failed")
