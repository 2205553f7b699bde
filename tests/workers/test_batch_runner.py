"""The JobRunner on batch items, in process (no broker): the batch's template is merged into the task,
the engine is asked with batch priority and a bounded rate-limit wait, and when the limiter has no
room the item goes back to the queue, uncounted, with a delayed message, instead of failing."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from datetime import timedelta

import pytest

from app.config import Settings
from app.engine.results import CallResult, Cost
from app.providers.base import Usage
from app.queue import TaskQueue
from app.ratelimit import RateLimitWaitExceeded
from app.services.batch_intake import BatchIntake
from app.services.batch_items import TemplateCache
from app.store.batch_records import NewBatch, NewItem
from app.store.batches import BatchRepository
from app.store.projects import ProjectRepository
from app.store.tables import Job, JobStatus, utcnow
from tests.workers.in_process import in_process_runtime
from workers import engine_call as engine_call_module
from workers.batch_dispatch import BATCH_MAX_RATE_WAIT, BATCH_PRIORITY
from workers.batch_support import BatchSupport
from workers.cancellation import Watch
from workers.celery_app import BATCH_QUEUE, RUN_BATCH_ITEM
from workers.runner import JobRunner


@dataclass
class SentTasks:
    sent: list[tuple] = field(default_factory=list)

    def send_task(self, name, args, queue, countdown=None):  # noqa: ANN001 - Celery's signature
        self.sent.append((name, args, queue, countdown))


class NoCancels:
    in_flight = 0

    @contextlib.contextmanager
    def watch(self, job_id):  # noqa: ANN001
        yield Watch()


class Kicks:
    def __init__(self) -> None:
        self.count = 0
        self.idle: list[bool] = []

    def __call__(self, idle: bool) -> None:
        self.count += 1
        self.idle.append(idle)


@pytest.fixture
def setup(tmp_path):
    settings = Settings(_env_file=None, CONVEYOR_JOB_LEASE_SECONDS="30")
    with in_process_runtime(tmp_path, settings=settings, engine_deps=None, cancels=NoCancels()) as runtime:
        project = ProjectRepository(runtime.db).ensure_project("p")
        batches = BatchRepository(runtime.db)
        template = {
            "name": "t",
            "instructions": "be brief",
            "models": [{"name": "fake/a"}],
            "config": {"few_shot_count": 0},
        }
        new = NewBatch(project_id=project.id, task_template=template)
        result = BatchIntake(batches).run(new, [NewItem("a", {"q": 1}, {"k": "v"})], skip_invalid=False)
        celery, relay = SentTasks(), Kicks()
        support = BatchSupport(TemplateCache(batches), relay)
        yield JobRunner(runtime, queue=TaskQueue(celery), batches=support), result, batches, celery, relay


def test_a_batch_item_without_rate_limit_room_goes_back_to_the_queue(setup, monkeypatch):
    runner, intake, batches, celery, relay = setup
    asked = {}

    async def no_room(task, deps, **kwargs):  # noqa: ANN001, ANN003
        asked.update(kwargs, instructions=task.instructions, input=task.input, tags=task.tags)
        raise RateLimitWaitExceeded("fake/a", "rpm", 12.5)

    monkeypatch.setattr(engine_call_module, "complete_task", no_room)
    assert runner.run(intake.anchor_job_id) is None
    assert asked["priority"] == BATCH_PRIORITY and asked["max_rate_wait"] == BATCH_MAX_RATE_WAIT
    assert (asked["instructions"], asked["input"], asked["tags"]) == ("be brief", {"q": 1}, {"k": "v"})
    job = runner.runtime.jobs.get(intake.anchor_job_id)
    assert job.status is JobStatus.queued and job.delivery_attempts == 0  # not counted
    assert celery.sent == [(RUN_BATCH_ITEM, [job.id], BATCH_QUEUE, 12.5)]
    batch = batches.get(intake.batch_id)
    assert batch.totals.running == 0 and batch.queued == 1 and relay.count == 0
    with runner.runtime.db.transaction() as session:
        due = session.get(Job, job.id).dispatched_at
    assert utcnow() + timedelta(seconds=10) < due < utcnow() + timedelta(seconds=13)  # counted out until then


def test_a_batch_item_that_runs_ends_and_sends_the_next(setup, monkeypatch):
    runner, intake, batches, celery, relay = setup

    async def answer(task, deps, **kwargs):  # noqa: ANN001, ANN003
        now = utcnow()
        return CallResult("fake/a", "hi", None, Usage(3, 2), Cost(0.5), (), started_at=now, ended_at=now)

    monkeypatch.setattr(engine_call_module, "complete_task", answer)
    assert runner.run(intake.anchor_job_id) is JobStatus.succeeded
    assert relay.count == 1  # an early dispatcher round was asked for
    assert relay.idle == [True]  # at once: nothing else in flight, the batch may be over
    batch = batches.get(intake.batch_id)
    assert batch.totals.succeeded == 1 and batch.totals.running == 0
    assert (batch.totals.input_tokens, batch.totals.cost_generation) == (3, 0.5)
    assert runner.runtime.jobs.get(intake.anchor_job_id).task == {"name": "t", "input": {"q": 1}, "tags": {"k": "v"}}
