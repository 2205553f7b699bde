"""Jobs ending together (EndingWriter.write_blocking, on a SQLite file): one transaction for the group,
and should that fail, each written alone, so one bad row holds back no other job."""

from __future__ import annotations

import pytest

from app.store.jobs import Finish, JobRepository, NewJob
from app.store.projects import ProjectRepository
from app.store.tables import JobStatus, Span
from tests.workers.in_process import in_process_runtime
from workers.endings import Ending
from workers.runner import JobRunner


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
    with in_process_runtime(tmp_path, redis=Published()) as runtime:
        project = ProjectRepository(runtime.db).ensure_project("p")
        yield JobRunner(runtime), runtime.jobs, project.id


def ending(jobs: JobRepository, project_id: str, *, bad_row: bool = False) -> Ending:
    job = jobs.create(NewJob(project_id=project_id, task={"name": "t"}, trace_id="t"))
    claim = jobs.claim(job.id, lease_seconds=60)
    span = Span(project_id=None if bad_row else project_id, trace_id="t", name="t", type="call", job_id=job.id)
    return Ending(claim, Finish(job.id, claim.token, JobStatus.succeeded, {"ok": 1}, spans=[span]))


def test_jobs_ending_together_are_written_and_announced_together(setup):
    runner, jobs, project_id = setup
    endings = [ending(jobs, project_id) for _ in range(3)]
    assert runner.ending_writer.write_blocking(endings) == [True, True, True]
    assert [jobs.get(e.claim.job.id).status for e in endings] == [JobStatus.succeeded] * 3
    assert len(runner.runtime.redis.messages) == 3


def test_a_group_that_fails_is_written_one_job_at_a_time(setup):
    runner, jobs, project_id = setup
    good, bad, other = ending(jobs, project_id), ending(jobs, project_id, bad_row=True), ending(jobs, project_id)
    outcomes = runner.ending_writer.write_blocking([good, bad, other])
    assert outcomes[0] is True and outcomes[2] is True
    assert isinstance(outcomes[1], Exception)  # only its own job hears the error
    statuses = [jobs.get(e.claim.job.id).status for e in (good, bad, other)]
    assert statuses == [JobStatus.succeeded, JobStatus.running, JobStatus.succeeded]
    assert [channel.split(":")[-2] for channel, _ in runner.runtime.redis.messages] == [
        good.claim.job.id,
        other.claim.job.id,
    ]
