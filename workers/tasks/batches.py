"""Celery glue for batch items, and the wiring of a worker's batch duties.

An item's message carries its job id only; the JobRunner does the rest (template, rate-limit
priority, an early dispatcher round). `batch_duties` and `batch_support` build, from the worker's
runtime, what the periodic duties and the runner need.
"""

from __future__ import annotations

import redis
from celery import Celery

from app.queue import TaskQueue
from app.services.batch_completion import BatchCompletion
from app.services.batch_items import TemplateCache
from app.store.batch_dispatch import BatchDispatchRepository
from app.store.batches import BatchRepository
from workers.batch_dispatch import BatchCapacity, BatchDispatcher, DispatchPolicy
from workers.batch_support import BatchSupport
from workers.celery_app import RUN_BATCH_ITEM
from workers.loop_pool import LoopTasks
from workers.periodic import BatchDuties
from workers.runner import JobRunner
from workers.runtime import WorkerRuntime


def register_batch_tasks(app: Celery, tasks: LoopTasks, runner: JobRunner) -> None:
    tasks.register(app, RUN_BATCH_ITEM, runner.run_async)


def batch_duties(runtime: WorkerRuntime, queue: TaskQueue, *, member: str, slots: int) -> BatchDuties:
    """The dispatcher this worker's periodic duties run rounds of (and its capacity registration)."""
    batches = BatchRepository(runtime.db)
    capacity = BatchCapacity(runtime.redis)
    dispatcher = BatchDispatcher(
        BatchDispatchRepository(runtime.db),
        batches,
        BatchCompletion(batches, runtime.dispatcher),
        queue,
        capacity,
        DispatchPolicy.from_settings(runtime.settings),
        on_cancelled=runtime.counts.cancelled,
    )
    client: redis.Redis = runtime.redis
    return BatchDuties(dispatcher, capacity, client, member, slots)


def batch_support(runtime: WorkerRuntime, duties: BatchDuties) -> BatchSupport:
    """What the runner needs for batch items: templates, and an early dispatcher round after each."""
    return BatchSupport(TemplateCache(BatchRepository(runtime.db)), lambda idle: duties.kick(at_once=idle))
