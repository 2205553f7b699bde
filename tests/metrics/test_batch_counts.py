"""Batch items the metrics used to miss, in process over SQLite: items the batch dispatcher cancels (a
cancelling batch's items that went back to the queue: a deferral's, a lost worker's) count as
cancelled, and deferred items, whose delayed messages workers hold outside the queues' lengths, are a
gauge of their own."""

from __future__ import annotations

from datetime import timedelta

import fakeredis
import pytest

from app.metrics.families import JOBS_FINISHED, counter_field
from app.metrics.scrape import ClusterSnapshot, render
from app.metrics.worker import WorkerCounts
from app.services.batch_completion import BatchCompletion
from app.services.batch_intake import BatchIntake
from app.services.batch_items import BATCH_CANCELLED_ERROR
from app.store.activity import ActivityReader
from app.store.batch_dispatch import BatchDispatchRepository
from app.store.batch_records import NewBatch, NewItem
from app.store.batches import BatchRepository
from app.store.db import Database, run_migrations
from app.store.jobs import JobRepository
from app.store.projects import ProjectRepository
from app.store.tables import JobStatus, utcnow
from tests.metrics.scrape import Scrape
from workers.batch_dispatch import BatchCapacity, BatchDispatcher, DispatchPolicy

TEMPLATE = {"name": "t", "models": [{"name": "fake/a"}]}


@pytest.fixture
def db(tmp_path):
    url = f"sqlite:///{tmp_path / 'm.sqlite3'}"
    run_migrations(url)
    database = Database(url)
    yield database
    database.dispose()


def new_batch(db: Database, items: int) -> tuple[str, list[str]]:
    """A running batch of `items` queued items: its id and theirs, in order."""
    batches = BatchRepository(db)
    project = ProjectRepository(db).ensure_project("p")
    intake = BatchIntake(batches).run(
        NewBatch(project.id, TEMPLATE), [NewItem(f"i{n}", n, {}) for n in range(items)], skip_invalid=False
    )
    return intake.batch_id, [item.job_id for item in batches.items(intake.batch_id)]


def test_items_the_dispatcher_cancels_count_as_cancelled(db):
    batch_id, (held, *others) = new_batch(db, 3)
    jobs, batches = JobRepository(db), BatchRepository(db)
    claim = jobs.claim_queued([held], 30)[held]
    assert batches.request_cancel(batch_id, error=BATCH_CANCELLED_ERROR) == 2  # the API's cancel (it counts these)
    jobs.release(held, claim.token, redispatch_at=None)  # no rate-limit room: back on the queue
    counts = WorkerCounts(lambda model: model)
    dispatcher = BatchDispatcher(
        BatchDispatchRepository(db),
        batches,
        BatchCompletion(batches, webhooks=None),
        queue=None,  # a cancelling batch sends nothing
        capacity=BatchCapacity(fakeredis.FakeRedis()),
        policy=DispatchPolicy(),
        on_cancelled=counts.cancelled,
    )

    dispatcher.tick()

    assert jobs.get(held).status is JobStatus.cancelled
    assert counts.pending.take().deltas == {counter_field(JOBS_FINISHED, "cancelled"): 1}
    dispatcher.tick()  # nothing more to cancel: nothing more counted
    assert not counts.pending.take()


def test_deferred_items_are_a_gauge_apart_from_the_queues(db):
    batch_id, (deferred, sent, waiting) = new_batch(db, 3)
    jobs = JobRepository(db)
    claim = jobs.claim_queued([deferred], 30)[deferred]
    jobs.release(deferred, claim.token, redispatch_at=utcnow() + timedelta(seconds=20))  # workers/deferral.py
    assert BatchDispatchRepository(db).take_next(batch_id, 1) == [sent]  # a message out now, on the queue

    activity = ActivityReader(db).read()

    assert activity.jobs_deferred == 1
    scraped = Scrape(render(ClusterSnapshot({}, {"conveyor.batch": 1}, 1, activity)).decode())
    assert scraped.value("conveyor_jobs_deferred") == 1
    assert scraped.value("conveyor_queue_depth", queue="conveyor.batch") == 1
