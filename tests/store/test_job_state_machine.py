"""The job state machine on both backends: Postgres (a schema per test) and SQLite (a file per test)."""

from __future__ import annotations

import threading
from datetime import timedelta

from app.store.db import Database
from app.store.job_recovery import JobRecovery
from app.store.jobs import JobRepository, NewJob
from app.store.projects import ProjectRepository
from app.store.tables import Job, JobStatus, Span, utcnow


def new_job(db: Database) -> tuple[JobRepository, str]:
    project = ProjectRepository(db).ensure_project("p")
    jobs = JobRepository(db)
    job = jobs.create(NewJob(project_id=project.id, task={"name": "t", "input": 1}, trace_id="tr"))
    return jobs, job.id


def queued_ago(db: Database, job_id: str, seconds: float) -> None:
    """Move a job's creation `seconds` into the past: it has waited that long."""
    with db.transaction() as session:
        session.get(Job, job_id).created_at -= timedelta(seconds=seconds)


def test_claim_is_exclusive_and_finish_happens_once(db):
    jobs, job_id = new_job(db)
    first = jobs.claim(job_id, lease_seconds=60)
    assert first is not None and first.job.status is JobStatus.running
    assert jobs.claim(job_id, lease_seconds=60) is None  # a live lease is not taken over
    span = Span(project_id=first.job.project_id, trace_id="tr", name="t", type="call")
    assert jobs.finish(job_id, first.token, JobStatus.succeeded, result={"ok": 1}, spans=[span])
    assert not jobs.finish(job_id, first.token, JobStatus.succeeded, result={"ok": 2})
    assert jobs.claim(job_id, lease_seconds=60) is None  # finished jobs are never run again
    stored = jobs.get(job_id)
    assert stored.status is JobStatus.succeeded and stored.result == {"ok": 1}
    assert stored.created_at.tzinfo is not None


def test_expired_lease_is_swept_and_the_old_holder_cannot_write(db):
    jobs, job_id = new_job(db)
    stale = jobs.claim(job_id, lease_seconds=-1)  # a lease that ran out a second ago
    assert JobRecovery(db).requeue_expired() == [job_id]
    assert JobRecovery(db).requeue_expired() == []
    fresh = jobs.claim(job_id, lease_seconds=60)
    assert fresh is not None and fresh.job.delivery_attempts == 2
    assert jobs.renew_many([(job_id, stale.token)], 60) == set()
    assert not jobs.finish(job_id, stale.token, JobStatus.succeeded, result={"from": "stale"})
    assert jobs.finish(job_id, fresh.token, JobStatus.succeeded, result={"from": "fresh"})
    assert jobs.get(job_id).result == {"from": "fresh"}


def test_concurrent_claims_have_one_winner(db):
    jobs, job_id = new_job(db)
    winners = []
    barrier = threading.Barrier(8)

    def claim() -> None:
        barrier.wait()
        if jobs.claim(job_id, lease_seconds=60):
            winners.append(1)

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(winners) == 1


def test_claiming_many_takes_only_queued_jobs_once_each(db):
    jobs, queued = new_job(db)
    _, other = new_job(db)
    _, running = new_job(db)
    held = jobs.claim(running, lease_seconds=60)
    claims = jobs.claim_queued([queued, other, queued, running, "no-such-job"], lease_seconds=60)
    assert sorted(claims) == sorted([queued, other])  # a duplicate id claims its job once
    assert all(c.job.status is JobStatus.running and c.job.delivery_attempts == 1 for c in claims.values())
    assert jobs.claim_queued([queued, other], lease_seconds=60) == {}  # live leases are not taken over
    # One statement, one token: each lease is still proven by its job id with the token.
    assert jobs.renew_many([(queued, claims[queued].token)], 60) == {(queued, claims[queued].token)}
    assert jobs.finish(other, claims[other].token, JobStatus.succeeded, result={"ok": 1})
    assert jobs.get(queued).status is JobStatus.running and jobs.get(other).status is JobStatus.succeeded
    assert not jobs.finish(running, claims[queued].token, JobStatus.succeeded, result={"stolen": 1})
    assert jobs.finish(running, held.token, JobStatus.succeeded, result={"ok": 2})


def test_concurrent_bulk_claims_take_each_job_once(db):
    ids = [new_job(db)[1] for _ in range(30)]
    jobs = JobRepository(db)
    taken: list[str] = []
    barrier = threading.Barrier(4)

    def claim(order: list[str]) -> None:
        barrier.wait()
        taken.extend(jobs.claim_queued(order, lease_seconds=60))

    orders = [ids, ids[::-1], ids[10:] + ids[:10], ids[::2] + ids[1::2]]
    threads = [threading.Thread(target=claim, args=(order,)) for order in orders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(taken) == sorted(ids)


def test_jobs_are_scoped_to_their_project(db):
    jobs, job_id = new_job(db)
    other = ProjectRepository(db).ensure_project("other")
    assert jobs.get(job_id, project_id=other.id) is None
    assert jobs.get(job_id, project_id=jobs.get(job_id).project_id) is not None


def test_api_keys_are_stored_hashed(db):
    projects = ProjectRepository(db)
    key = projects.create_key("team")
    assert projects.project_for_key(key).name == "team"
    assert projects.project_for_key(key + "x") is None
    with db.engine.connect() as connection:
        stored = connection.exec_driver_sql("SELECT key_hash FROM api_keys").scalars().all()
    assert key not in stored and len(stored[0]) == 64


def test_queued_interactive_jobs_waiting_too_long_are_resent_once_per_period(db):
    jobs, stranded = new_job(db)
    _, claimed = new_job(db)
    jobs.claim(claimed, lease_seconds=60)
    queued_ago(db, stranded, 60)
    queued_ago(db, claimed, 60)
    cutoff = utcnow() - timedelta(seconds=30)
    _, fresh = new_job(db)  # queued after the cutoff: merely waiting
    assert JobRecovery(db).resend_stranded(queued_before=cutoff) == [stranded]
    assert JobRecovery(db).resend_stranded(queued_before=cutoff) == []  # marked: not again until a period passes
    later = utcnow() + timedelta(seconds=1)  # a period on: past the mark and past `fresh`
    assert JobRecovery(db).resend_stranded(queued_before=later) == [stranded, fresh]
    claim = jobs.claim(stranded, lease_seconds=60)  # the re-sent message claims it as usual
    assert claim is not None and claim.job.delivery_attempts == 1


def test_batch_items_are_not_resent_as_interactive_jobs(db):
    jobs, job_id = new_job(db)
    with db.transaction() as session:
        session.get(Job, job_id).batch_id = "some-batch"
    assert JobRecovery(db).resend_stranded(queued_before=utcnow() + timedelta(seconds=1)) == []


def test_renewing_many_extends_only_the_leases_still_held(db, monkeypatch):
    jobs, held = new_job(db)
    _, taken_over = new_job(db)
    _, finished = new_job(db)
    claims = {job_id: jobs.claim(job_id, lease_seconds=5) for job_id in (held, taken_over, finished)}
    assert jobs.finish(finished, claims[finished].token, JobStatus.succeeded, result={"ok": 1})
    monkeypatch.setattr("app.store.jobs.RENEW_CHUNK", 2)  # several statements for one call
    # `taken_over` is asked for with a token that is not its holder's: another worker holds it now.
    pairs = [(held, claims[held].token), (taken_over, "another-token"), (finished, claims[finished].token)]
    renewed = jobs.renew_many(pairs, lease_seconds=600)
    assert renewed == {(held, claims[held].token)}
    with db.transaction() as session:
        expiry = {job_id: session.get(Job, job_id).lease_expires_at for job_id in (held, taken_over, finished)}
    assert expiry[held].replace(tzinfo=None) > utcnow().replace(tzinfo=None) + timedelta(seconds=500)
    assert expiry[taken_over].replace(tzinfo=None) < utcnow().replace(tzinfo=None) + timedelta(seconds=10)  # untouched
    assert expiry[finished] is None and jobs.get(finished).status is JobStatus.succeeded
    assert jobs.renew_many([], lease_seconds=600) == set()
