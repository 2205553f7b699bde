"""Celery glue for running a job: the task body is the JobRunner."""

from __future__ import annotations

from celery import Celery

from workers.celery_app import RUN_JOB
from workers.runner import JobRunner


def register_call_tasks(app: Celery, runner: JobRunner) -> None:
    @app.task(name=RUN_JOB, acks_late=True, reject_on_worker_lost=True)
    def run_job(job_id: str) -> None:
        runner.run(job_id)
