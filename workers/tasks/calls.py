"""Celery glue for running a job: the task body is the JobRunner, run as a coroutine on the loop."""

from __future__ import annotations

from celery import Celery

from workers.celery_app import RUN_JOB
from workers.loop_pool import LoopTasks
from workers.runner import JobRunner


def register_call_tasks(app: Celery, tasks: LoopTasks, runner: JobRunner) -> None:
    tasks.register(app, RUN_JOB, runner.run_async)
