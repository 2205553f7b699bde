"""A worker killed mid-call: another worker completes the job exactly once (one result, one bill)."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import redis
from sqlalchemy import select

from app.store.jobs import JobRepository, NewJob
from app.store.projects import ProjectRepository
from app.store.tables import Job, JobStatus, Span
from tests.helpers import eventually, unique
from tests.stack import start_stack
from workers.celery_app import INTERACTIVE_QUEUE, RUN_JOB, make_celery
from workers.periodic import STRANDED_AFTER


@pytest.fixture
def crash_stack(fake_provider):
    stack = start_stack(fake_provider.url, workers=0, CONVEYOR_JOB_LEASE_SECONDS="2", CONVEYOR_SWEEP_INTERVAL="0.5")
    yield stack
    stack.stop()


def test_killed_worker_job_completes_once_elsewhere(crash_stack, fake_provider):
    stack = crash_stack
    key = stack.new_key()
    doomed = stack.start_worker()
    model = unique("fake/slow?latency_ms=3000")
    outcome: dict = {}

    def call() -> None:
        with stack.client(key, timeout=60) as client:
            outcome["response"] = client.post(
                "/call",
                json={
                    "name": "crash",
                    "input": "x",
                    "model": model,
                    "output_schema": {
                        "type": "object",
                        "properties": {"ok": {"type": "boolean"}},
                        "required": ["ok"],
                    },
                },
            )

    caller = threading.Thread(target=call)
    caller.start()
    eventually(lambda: fake_provider.requests_for(model), 15, what="the doomed worker's call at the provider")
    stack.kill_worker(doomed)
    stack.start_worker()
    caller.join(timeout=60)

    response = outcome["response"]
    assert response.status_code == 200, response.text
    assert fake_provider.requests_for(model) == 2  # the abandoned request, then the one that finished
    with stack.db.transaction() as session:
        job = session.scalars(select(Job).where(Job.span_id == response.json()["span_id"])).one()
        spans = session.scalars(select(Span).where(Span.job_id == job.id)).all()
    assert job.status == JobStatus.succeeded and job.delivery_attempts == 2
    assert job.result == response.json()
    assert sorted(s.type for s in spans) == ["call", "generation"]  # one result, one billed attempt
    billed = [s for s in spans if s.type == "generation"]
    assert billed[0].cost_generation == response.json()["cost"]["generation"] > 0


def test_a_job_whose_message_was_never_sent_is_run_by_the_sweep(crash_stack, fake_provider):
    """The API wrote the job row and died before enqueueing it: a worker's sweep sends it again."""
    stack = crash_stack
    model = unique("fake/stranded")
    project = ProjectRepository(stack.db).ensure_project("stranded")
    task = {"name": "stranded", "input": "x", "models": [{"name": model}]}
    job = JobRepository(stack.db).create(NewJob(project_id=project.id, task=task, trace_id="t"))
    with stack.db.transaction() as session:  # written long enough ago, and no message sent
        session.get(Job, job.id).created_at -= STRANDED_AFTER + timedelta(seconds=1)
    stack.start_worker()

    def ended() -> Job | None:
        row = JobRepository(stack.db).get(job.id)
        return row if row.status not in (JobStatus.queued, JobStatus.running) else None

    stored = eventually(ended, 30, what="the stranded job run to its end")
    assert stored.status is JobStatus.succeeded and stored.delivery_attempts == 1, stored
    assert fake_provider.requests_for(model) == 1


def test_a_stopped_worker_finishes_its_calls_in_flight_before_exiting(crash_stack, fake_provider):
    """Warm shutdown (SIGTERM, as on a deploy): jobs running as coroutines end and are acknowledged;
    no message is left unacknowledged or handed to the next worker."""
    stack = crash_stack
    worker = stack.start_worker()
    model = unique("fake/draining?latency_ms=1500")
    project = ProjectRepository(stack.db).ensure_project("draining")
    jobs = JobRepository(stack.db)
    ids = [
        jobs.create(
            NewJob(project_id=project.id, task={"name": "d", "input": n, "models": [{"name": model}]}, trace_id="t")
        ).id
        for n in range(10)
    ]
    celery = make_celery(stack.settings)
    for job_id in ids:
        celery.send_task(RUN_JOB, args=[job_id], queue=INTERACTIVE_QUEUE)
    eventually(lambda: fake_provider.requests_for(model) >= len(ids), 15, what="the calls in flight")
    worker.terminate()
    assert worker.wait(timeout=30) == 0
    assert [jobs.get(job_id).status for job_id in ids] == [JobStatus.succeeded] * len(ids)
    assert all(jobs.get(job_id).delivery_attempts == 1 for job_id in ids)
    broker = redis.Redis.from_url(stack.settings.redis_url)
    assert broker.hlen("unacked") == 0 and broker.llen(INTERACTIVE_QUEUE) == 0
    assert fake_provider.requests_for(model) == len(ids)
