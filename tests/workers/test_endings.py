"""Jobs ending together (EndingWriter.write_blocking, on a SQLite file): one transaction for the group,
and should that fail, each written alone, so one bad row holds back no other job."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
import redis
import redis.asyncio as aioredis

from app.store.async_endings import AsyncEndings
from app.store.db import Database, run_migrations
from app.store.jobs import Finish, JobRepository, NewJob
from app.store.projects import ProjectRepository
from app.store.tables import JobStatus, Span
from tests.stack import drop_pg_schema, new_pg_schema, new_redis_url
from tests.workers.in_process import in_process_runtime
from workers.endings import Ending, EndingWriter
from workers.event_loop import EventLoopThread
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


@pytest.fixture
def pg_setup():
    """The same on Postgres, where endings are written from the event loop (AsyncEndings)."""
    schema, url = new_pg_schema()
    run_migrations(url)
    db = Database(url)
    loop = EventLoopThread()
    redis_url = new_redis_url()
    endings = AsyncEndings(url)
    async_redis = aioredis.Redis.from_url(redis_url)
    loop.run(endings.open())
    runtime = SimpleNamespace(db=db, jobs=JobRepository(db), async_endings=endings, async_redis=async_redis)
    listener = redis.Redis.from_url(redis_url).pubsub(ignore_subscribe_messages=True)
    listener.psubscribe("conveyor:job:*:done")
    try:
        project = ProjectRepository(db).ensure_project("p")
        yield EndingWriter(runtime, run_blocking=None), runtime.jobs, project.id, loop, listener
    finally:
        loop.run(endings.close())
        loop.run(async_redis.aclose())
        listener.close()
        loop.stop()
        db.dispose()
        drop_pg_schema(schema)


def announced(listener, count: int) -> list[str]:
    """The job ids of the next `count` done announcements (waits up to 5 s for them)."""
    ids: list[str] = []
    deadline = time.monotonic() + 5
    while len(ids) < count:
        assert time.monotonic() < deadline, f"only {ids} announced"
        message = listener.get_message(timeout=0.1)  # None also for the subscription's confirmation
        if message is not None:
            ids.append(message["channel"].decode().split(":")[-2])
    return ids


def test_on_postgres_a_group_is_written_from_the_loop_and_a_failing_one_job_by_job(pg_setup):
    writer, jobs, project_id, loop, listener = pg_setup
    together = [ending(jobs, project_id) for _ in range(3)]
    assert loop.run(writer.write(together)) == [True, True, True]
    assert announced(listener, 3) == [e.claim.job.id for e in together]
    stale = ending(jobs, project_id)
    stale = Ending(stale.claim, Finish(stale.finish.job_id, "another-lease", JobStatus.succeeded, {"ok": 1}))
    good, bad = ending(jobs, project_id), ending(jobs, project_id, bad_row=True)
    outcomes = loop.run(writer.write([good, bad, stale]))
    assert outcomes[0] is True and isinstance(outcomes[1], Exception) and outcomes[2] is False
    statuses = [jobs.get(e.claim.job.id).status for e in (*together, good, bad, stale)]
    assert statuses == [JobStatus.succeeded] * 4 + [JobStatus.running, JobStatus.running]
    assert announced(listener, 1) == [good.claim.job.id]
    assert listener.get_message(timeout=0.2) is None  # and none for the jobs not written
