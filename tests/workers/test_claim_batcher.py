"""The ClaimBatcher on a real database (SQLite file): a burst of claims shares statements, each job is
claimed once, what the group's statement leaves out is tried alone, and a failed statement fails its waiters."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import pytest

from app.store.db import Database, run_migrations
from app.store.jobs import JobRepository, NewJob
from app.store.projects import ProjectRepository
from app.store.tables import JobStatus
from workers.claims import ClaimBatcher


class CountingJobs(JobRepository):
    def __init__(self, db: Database) -> None:
        super().__init__(db)
        self.statements: list[int] = []
        self.fail = False

    def claim_queued(self, job_ids, lease_seconds):  # noqa: ANN001
        if self.fail:
            raise RuntimeError("database unreachable")
        self.statements.append(len(job_ids))
        return super().claim_queued(job_ids, lease_seconds)


@pytest.fixture
def setup(tmp_path):
    url = f"sqlite:///{tmp_path / 'c.sqlite3'}"
    run_migrations(url)
    db = Database(url)
    jobs = CountingJobs(db)
    project = ProjectRepository(db).ensure_project("p")
    threads = ThreadPoolExecutor(max_workers=4)

    def new_jobs(n: int) -> list[str]:
        return [jobs.create(NewJob(project_id=project.id, task={"name": "t"}, trace_id="t")).id for _ in range(n)]

    async def run_blocking(function, *args):  # noqa: ANN001, ANN002
        return await asyncio.get_running_loop().run_in_executor(threads, partial(function, *args))

    def batcher() -> ClaimBatcher:
        return ClaimBatcher(
            partial(jobs.claim_queued, lease_seconds=60),
            partial(jobs.claim, lease_seconds=60),
            run_blocking,
        )

    yield jobs, new_jobs, batcher, db
    threads.shutdown()
    db.dispose()


def test_a_burst_of_claims_shares_statements_and_takes_each_job_once(setup):
    jobs, new_jobs, batcher, _ = setup
    ids = new_jobs(100)

    async def burst():
        claims = batcher()
        return await asyncio.gather(*(claims.claim(job_id) for job_id in ids + ids[:10]))

    claims = asyncio.run(burst())
    assert sorted(c.job.id for c in claims if c is not None) == sorted(ids)
    assert claims.count(None) == 10  # the duplicate messages find their jobs held
    assert len(jobs.statements) < 10 and sum(jobs.statements) == 110
    assert all(jobs.get(job_id).status is JobStatus.running for job_id in ids)


def test_a_lone_claim_is_not_held_back_and_jobs_the_statement_skips_are_tried_alone(setup):
    jobs, new_jobs, batcher, _ = setup
    lone, expired = new_jobs(2)
    jobs.claim(expired, lease_seconds=0)  # a crashed worker's job: running, its lease over

    async def claim_each():
        claims = batcher()
        return await claims.claim(lone), await claims.claim(expired), await claims.claim("no-such-job")

    lone_claim, expired_claim, missing = asyncio.run(claim_each())
    assert jobs.statements == [1, 1, 1]
    assert lone_claim.job.id == lone and missing is None
    assert expired_claim.job.id == expired and expired_claim.job.delivery_attempts == 2


def test_a_failed_statement_fails_each_of_its_waiters(setup):
    jobs, new_jobs, batcher, _ = setup
    ids = new_jobs(5)
    jobs.fail = True

    async def burst():
        claims = batcher()
        return await asyncio.gather(*(claims.claim(job_id) for job_id in ids), return_exceptions=True)

    outcomes = asyncio.run(burst())
    assert all(isinstance(outcome, RuntimeError) for outcome in outcomes)
    assert all(jobs.get(job_id).status is JobStatus.queued for job_id in ids)
