"""Jobs ending together (JobRunner._write_endings, on a SQLite file): one transaction for the group,
and should that fail, each written alone, so one bad row holds back no other job."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import pytest

from app.config import Settings
from app.store.db import Database, run_migrations
from app.store.jobs import Finish, JobRepository, NewJob
from app.store.projects import ProjectRepository
from app.store.tables import JobStatus, Span
from workers.event_loop import EventLoopThread
from workers.runner import Ending, JobRunner


class Published:
    def __init__(self) -> None:
        self.messages: list[tuple[str, str]] = []

    def pipeline(self, transaction: bool = False):  # noqa: ANN201, FBT001, FBT002
        return self

    def publish(self, channel: str, message: str) -> None:
        self.messages.append((channel, message))

    def execute(self) -> None:
        pass


@pytest.fixture
def setup(tmp_path):
    url = f"sqlite:///{tmp_path / 'c.sqlite3'}"
    run_migrations(url)
    db = Database(url)
    loop = EventLoopThread()
    jobs = JobRepository(db)
    project = ProjectRepository(db).ensure_project("p")
    runtime = SimpleNamespace(
        settings=Settings(_env_file=None),
        jobs=jobs,
        db=db,
        loop=loop,
        redis=Published(),
        blocking=ThreadPoolExecutor(max_workers=2),
    )
    yield JobRunner(runtime), jobs, project.id
    loop.stop()
    db.dispose()


def ending(jobs: JobRepository, project_id: str, *, bad_row: bool = False) -> Ending:
    job = jobs.create(NewJob(project_id=project_id, task={"name": "t"}, trace_id="t"))
    claim = jobs.claim(job.id, lease_seconds=60)
    span = Span(project_id=None if bad_row else project_id, trace_id="t", name="t", type="call", job_id=job.id)
    return Ending(claim, Finish(job.id, claim.token, JobStatus.succeeded, {"ok": 1}, spans=[span]))


def test_jobs_ending_together_are_written_and_announced_together(setup):
    runner, jobs, project_id = setup
    endings = [ending(jobs, project_id) for _ in range(3)]
    assert runner._write_endings(endings) == [True, True, True]
    assert [jobs.get(e.claim.job.id).status for e in endings] == [JobStatus.succeeded] * 3
    assert len(runner.runtime.redis.messages) == 3


def test_a_group_that_fails_is_written_one_job_at_a_time(setup):
    runner, jobs, project_id = setup
    good, bad, other = ending(jobs, project_id), ending(jobs, project_id, bad_row=True), ending(jobs, project_id)
    outcomes = runner._write_endings([good, bad, other])
    assert outcomes[0] is True and outcomes[2] is True
    assert isinstance(outcomes[1], Exception)  # only its own job hears the error
    statuses = [jobs.get(e.claim.job.id).status for e in (good, bad, other)]
    assert statuses == [JobStatus.succeeded, JobStatus.running, JobStatus.succeeded]
    assert [channel.split(":")[-2] for channel, _ in runner.runtime.redis.messages] == [
        good.claim.job.id,
        other.claim.job.id,
    ]
