"""A running job's lease and limits (workers/lease_keeper.py, workers/runner.py), with the JobRunner in this
process over SQLite and a scripted engine call: leases are renewed together while calls run, a lost lease
or a lease run out in a database outage stops the call and writes nothing, the hard time limit fails the
job."""

from __future__ import annotations

import asyncio
import threading

import pytest
from sqlalchemy import update
from sqlalchemy.exc import OperationalError

from app.config import Settings
from app.engine.results import CallResult, Cost
from app.providers.base import Usage
from app.store.jobs import NewJob
from app.store.projects import ProjectRepository
from app.store.tables import Job, JobStatus, utcnow
from tests.workers.in_process import in_process_runtime
from tests.workers.test_batch_runner import NoCancels
from workers import engine_call as engine_call_module
from workers.runner import JobRunner

LEASE_SECONDS = 1  # renewed every third of a second


class Engine:
    """The engine call: answers after `seconds`, recording when it starts and when it is cancelled."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.started: list[str] = []
        self.cancelled: list[str] = []
        self.all_started = threading.Event()
        self.expected = 1

    async def __call__(self, task, deps, **kwargs):  # noqa: ANN001, ANN003 - complete_task's signature
        self.started.append(task.name)
        if len(self.started) >= self.expected:
            self.all_started.set()
        try:
            await asyncio.sleep(self.seconds)
        except asyncio.CancelledError:
            self.cancelled.append(task.name)
            raise
        now = utcnow()
        return CallResult("fake/a", "hi", None, Usage(3, 2), Cost(0.5), (), started_at=now, ended_at=now)


@pytest.fixture
def worker(tmp_path, monkeypatch):
    """(runtime, runner, renewals): renewals counts the renewing statements' calls and their sizes."""
    settings = Settings(_env_file=None, CONVEYOR_JOB_LEASE_SECONDS=str(LEASE_SECONDS), CONVEYOR_JOB_HARD_TIME_LIMIT="3")
    with in_process_runtime(tmp_path, settings=settings, engine_deps=None, cancels=NoCancels()) as runtime:
        renewals: list[int] = []
        renew_many = runtime.jobs.renew_many

        def counted(held, lease_seconds):  # noqa: ANN001, ANN202
            renewals.append(len(held))
            return renew_many(held, lease_seconds)

        monkeypatch.setattr(runtime.jobs, "renew_many", counted)
        yield runtime, JobRunner(runtime), renewals


def new_jobs(runtime, count: int) -> list[str]:  # noqa: ANN001
    project = ProjectRepository(runtime.db).ensure_project("p").id
    task = {"name": "t", "instructions": "be brief", "input": 1, "models": [{"name": "fake/a"}]}
    task["config"] = {"few_shot_count": 0}
    return [runtime.jobs.create(NewJob(project_id=project, task=task, trace_id="tr")).id for _ in range(count)]


def run_all(runtime, runner: JobRunner, job_ids: list[str]) -> list[JobStatus | None]:  # noqa: ANN001
    async def all_of() -> list[JobStatus | None]:
        return await asyncio.gather(*(runner.run_async(job_id) for job_id in job_ids))

    return runtime.loop.run(all_of(), timeout=30)


def test_calls_outlasting_their_leases_are_renewed_together_and_finish(worker, monkeypatch):
    runtime, runner, renewals = worker
    monkeypatch.setattr(engine_call_module, "complete_task", Engine(seconds=LEASE_SECONDS * 2.5))
    job_ids = new_jobs(runtime, 20)
    assert run_all(runtime, runner, job_ids) == [JobStatus.succeeded] * 20
    # Each tick renewed every job then in flight in one call, about 7 ticks in 2.5 leases: not 20 x 7.
    assert 4 <= len(renewals) <= 10 and max(renewals) == 20
    assert all(runtime.jobs.get(job_id).result["message"] == "hi" for job_id in job_ids)


def test_a_job_whose_lease_is_taken_over_is_abandoned_and_writes_nothing(worker, monkeypatch):
    runtime, runner, _ = worker
    engine = Engine(seconds=LEASE_SECONDS * 2)  # within the hard time limit
    monkeypatch.setattr(engine_call_module, "complete_task", engine)
    kept, taken = new_jobs(runtime, 2)
    engine.expected = 2

    async def both() -> list[JobStatus | None]:
        return await asyncio.gather(runner.run_async(kept), runner.run_async(taken))

    running = runtime.loop.submit(both())
    assert engine.all_started.wait(5)
    with runtime.db.transaction() as session:  # another worker took the job over (its lease had run out)
        session.execute(update(Job).where(Job.id == taken).values(lease_token="another-workers-token"))
    # The taken job's call is cancelled at the next renewal; the kept one runs on to its answer.
    statuses = running.result(timeout=10)
    assert statuses == [JobStatus.succeeded, None]
    assert engine.cancelled == ["t"]
    taken_job = runtime.jobs.get(taken)
    assert taken_job.status is JobStatus.running and taken_job.result is None  # left to its new holder


def test_the_hard_time_limit_fails_the_job(worker, monkeypatch):
    runtime, runner, renewals = worker
    engine = Engine(seconds=60)
    monkeypatch.setattr(engine_call_module, "complete_task", engine)
    (job_id,) = new_jobs(runtime, 1)
    assert run_all(runtime, runner, [job_id]) == [JobStatus.failed]
    job = runtime.jobs.get(job_id)
    assert job.error["type"] == "JobTimeout" and "hard time limit of 3 s" in job.error["message"]
    assert engine.cancelled == ["t"] and renewals  # renewed while it ran, then stopped


def test_in_a_database_outage_a_call_runs_on_while_its_lease_lasts_then_stops_with_the_error(worker, monkeypatch):
    runtime, runner, _ = worker
    refusals: list[float] = []

    def refuse(held, lease_seconds):  # noqa: ANN001, ANN202
        refusals.append(len(held))
        raise OperationalError("UPDATE jobs ...", {}, ConnectionRefusedError("connection refused"))

    monkeypatch.setattr(runner.leases, "renew_many", refuse)
    engine = Engine(seconds=60)
    monkeypatch.setattr(engine_call_module, "complete_task", engine)
    (job_id,) = new_jobs(runtime, 1)
    with pytest.raises(OperationalError):  # workers/loop_pool.py puts its message back on the queue
        run_all(runtime, runner, [job_id])
    # Refused about every third of a lease; the call was stopped only once the lease had run out.
    assert len(refusals) >= 3 and engine.cancelled == ["t"]
    assert runtime.jobs.get(job_id).status is JobStatus.running  # for the sweep to hand on


def test_a_cancellation_from_inside_the_call_abandons_the_job_without_stopping_the_worker(worker, monkeypatch):
    runtime, runner, _ = worker

    async def cancelled_inside(task, deps, **kwargs):  # noqa: ANN001, ANN003 - complete_task's signature
        future = asyncio.get_running_loop().create_future()
        future.cancel()
        await future  # a library awaiting something that was cancelled under it

    monkeypatch.setattr(engine_call_module, "complete_task", cancelled_inside)
    (job_id,) = new_jobs(runtime, 1)
    assert run_all(runtime, runner, [job_id]) == [None]  # ended (its message is acked), nothing written
    assert runtime.jobs.get(job_id).status is JobStatus.running  # the lease sweep runs it again
