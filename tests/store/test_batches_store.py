"""Batch storage on both backends: intake in chunks, counters moved by every item transition (and
agreeing with the rows), cancel, the end of a batch, and the dispatcher's marks."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from app.services.batch_intake import BatchIntake
from app.store.batch_dispatch import BatchDispatchRepository
from app.store.batch_records import BatchTemplate, NewBatch, NewItem
from app.store.batches import BatchRepository
from app.store.db import Database
from app.store.job_recovery import JobRecovery
from app.store.jobs import Finish, JobRepository, NewJob
from app.store.projects import ProjectRepository
from app.store.tables import Job, JobStatus, Span, utcnow
from app.store.tables_batches import Batch, BatchStatus

CANCELLED = {"type": "BatchCancelled", "message": "cancelled"}


def new_batch(db: Database, count: int, *, chunk_rows: int = 7) -> tuple[BatchRepository, str]:
    project = ProjectRepository(db).ensure_project("p")
    batches = BatchRepository(db)
    new = NewBatch(project_id=project.id, task_template={"name": "t", "instructions": "do"}, webhook_secrets=("s",))
    items = (NewItem(f"c{i}", {"n": i}, {"k": "v"}) for i in range(count))
    result = BatchIntake(batches, chunk_rows=chunk_rows).run(new, items, skip_invalid=False)
    return batches, result.batch_id


def item_ids(db: Database, batch_id: str) -> list[str]:
    with db.transaction() as session:
        return list(session.scalars(select(Job.id).where(Job.batch_id == batch_id).order_by(Job.batch_seq)))


def rows_by_status(db: Database, batch_id: str) -> Counter:
    with db.transaction() as session:
        rows = session.execute(
            select(Job.status, func.count()).where(Job.batch_id == batch_id).group_by(Job.status)
        ).all()
    return Counter({JobStatus(status).value: n for status, n in rows})


def assert_counters_match_rows(batches: BatchRepository, db: Database, batch_id: str) -> None:
    batch = batches.get(batch_id)
    rows = rows_by_status(db, batch_id)
    t = batch.totals
    assert (batch.queued, t.running, t.succeeded, t.failed, t.cancelled) == (
        rows["queued"],
        rows["running"],
        rows["succeeded"],
        rows["failed"],
        rows["cancelled"],
    )


def test_intake_writes_items_in_order_with_the_anchor_first(db):
    batches, batch_id = new_batch(db, 20)
    batch = batches.get(batch_id)
    assert batch.status is BatchStatus.running and batch.total == 20 and batch.queued == 20
    with db.transaction() as session:
        jobs = session.scalars(select(Job).where(Job.batch_id == batch_id).order_by(Job.batch_seq)).all()
        assert [j.custom_id for j in jobs] == [f"c{i}" for i in range(20)]
        assert [j.batch_seq for j in jobs] == list(range(1, 21))
        assert jobs[0].id == batch.anchor_job_id and batch.webhook_secrets == ("s",)  # the batch's, not an item's
        assert all(j.webhook_secrets is None for j in jobs)
        assert jobs[3].task == {"name": "t", "input": {"n": 3}, "tags": {"k": "v"}}
    assert batches.template(batch_id) == BatchTemplate({"name": "t", "instructions": "do"}, None)


def test_every_transition_moves_the_counters_with_the_rows(db):
    batches, batch_id = new_batch(db, 10)
    jobs = JobRepository(db)
    ids = item_ids(db, batch_id)
    claims = [jobs.claim(job_id, lease_seconds=60) for job_id in ids[:5]]
    assert batches.get(batch_id).totals.started_at is not None
    bill = Span(project_id=claims[0].job.project_id, trace_id="t", name="t", type="call")
    bill.input_tokens, bill.output_tokens, bill.total_tokens, bill.cost_generation = 10, 5, 15, 0.25
    assert jobs.finish(ids[0], claims[0].token, JobStatus.succeeded, result={"ok": 1}, spans=[bill])
    assert jobs.finish(ids[1], claims[1].token, JobStatus.failed, error={"message": "no"})
    assert jobs.cancel(ids[2], error=CANCELLED)  # running → cancelled
    assert jobs.cancel(ids[6], error=CANCELLED)  # queued → cancelled
    assert jobs.release(ids[3], claims[3].token, redispatch_at=None) is not None  # back to queued
    with db.transaction() as session:  # ids[4]'s worker died
        session.execute(update(Job).where(Job.id == ids[4]).values(lease_expires_at=utcnow() - timedelta(seconds=1)))
    requeued = JobRecovery(db).requeue_expired_jobs()
    assert [(r.id, r.batch_id) for r in requeued] == [(ids[4], batch_id)]
    assert_counters_match_rows(batches, db, batch_id)
    batch = batches.get(batch_id)
    assert (batch.totals.input_tokens, batch.totals.total_tokens, batch.totals.cost_generation) == (10, 15, 0.25)
    assert jobs.get(ids[3]).delivery_attempts == 0  # a release does not count as a delivery


def test_items_claimed_together_are_counted_once_per_stripe(db):
    batches, batch_id = new_batch(db, 40)
    jobs = JobRepository(db)
    ids = item_ids(db, batch_id)
    claims = jobs.claim_queued(ids[:30] + ids[:5], lease_seconds=60)
    assert sorted(claims) == sorted(ids[:30])
    assert all(claim.job.batch_id == batch_id for claim in claims.values())
    assert_counters_match_rows(batches, db, batch_id)
    assert batches.get(batch_id).totals.started_at is not None


def test_calls_and_items_claimed_together_share_one_lease_token_and_only_items_are_counted(db):
    # On Postgres the calls go in one autocommit statement and the items in a transaction after it.
    batches, batch_id = new_batch(db, 10)
    jobs = JobRepository(db)
    items = item_ids(db, batch_id)
    project_id = ProjectRepository(db).ensure_project("p").id
    calls = [jobs.create(NewJob(project_id=project_id, task={"name": "t"}, trace_id="tr")).id for _ in range(3)]
    claims = jobs.claim_queued(items[:4] + calls + items[:2], lease_seconds=60)
    assert sorted(claims) == sorted(items[:4] + calls)
    assert len({claim.token for claim in claims.values()}) == 1
    assert all(claim.job.status is JobStatus.running for claim in claims.values())
    assert_counters_match_rows(batches, db, batch_id)
    assert batches.get(batch_id).totals.running == 4
    assert jobs.claim_queued(calls + items[:4], lease_seconds=60) == {}  # held: not taken again


def test_items_ending_together_are_written_and_counted_in_one_transaction(db):
    batches, batch_id = new_batch(db, 40)
    jobs = JobRepository(db)
    ids = item_ids(db, batch_id)
    claims = [jobs.claim(job_id, lease_seconds=60) for job_id in ids[:30]]
    project_id = claims[0].job.project_id

    def bill(n: int) -> Span:
        span = Span(project_id=project_id, trace_id="t", name="t", type="call", job_id=ids[n])
        span.input_tokens, span.output_tokens, span.total_tokens, span.cost_generation = 10, 5, 15, 0.5
        return span

    finishes = [Finish(ids[n], claims[n].token, JobStatus.succeeded, {"n": n}, spans=[bill(n)]) for n in range(25)]
    finishes += [Finish(ids[n], claims[n].token, JobStatus.failed, error={"message": "no"}) for n in range(25, 29)]
    finishes.append(Finish(ids[29], "a stale token", JobStatus.succeeded, {"n": 29}, spans=[bill(29)]))
    assert jobs.finish_many(finishes) == [True] * 29 + [False]
    assert_counters_match_rows(batches, db, batch_id)
    totals = batches.get(batch_id).totals
    assert (totals.succeeded, totals.failed, totals.running) == (25, 4, 1)
    assert (totals.input_tokens, totals.total_tokens, totals.cost_generation) == (250, 375, 12.5)
    with db.transaction() as session:  # the stale holder's rows were not written
        assert session.scalar(select(func.count()).select_from(Span).where(Span.job_id.in_(ids))) == 25


def test_concurrent_claims_and_finishes_keep_counters_exact(db):
    if db.engine.dialect.name == "sqlite":
        pytest.skip("SQLite has one writer; the race is a Postgres matter")
    batches, batch_id = new_batch(db, 200, chunk_rows=50)
    jobs = JobRepository(db)
    ids = item_ids(db, batch_id)

    def work(part: list[str]) -> None:
        for job_id in part[:10]:
            claim = jobs.claim(job_id, lease_seconds=60)
            jobs.finish(job_id, claim.token, JobStatus.succeeded, result={})
        # The rest end in groups of five, each group touching several stripes (as workers write them).
        claims = [jobs.claim(job_id, lease_seconds=60) for job_id in part[10:]]
        for start in range(0, len(claims), 5):
            group = claims[start : start + 5]
            written = jobs.finish_many([Finish(c.job.id, c.token, JobStatus.succeeded, {}) for c in group])
            assert written == [True] * len(group)

    threads = [threading.Thread(target=work, args=(ids[n::8],)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert batches.get(batch_id).totals.succeeded == 200
    assert batches.end_if_done(batch_id, lambda ended: []).status is BatchStatus.completed


def test_cancel_stops_queued_items_at_once_and_ends_when_running_ones_do(db):
    batches, batch_id = new_batch(db, 6)
    jobs = JobRepository(db)
    ids = item_ids(db, batch_id)
    running = jobs.claim(ids[0], lease_seconds=60)
    assert batches.request_cancel(batch_id, error=CANCELLED) == 5
    assert batches.get(batch_id).status is BatchStatus.cancelling
    assert batches.end_if_done(batch_id, lambda ended: []) is None  # one item still runs
    assert jobs.claim(ids[1], lease_seconds=60) is None  # a cancelled item never runs
    assert jobs.finish(ids[0], running.token, JobStatus.succeeded, result={})
    ended_with: list[BatchStatus] = []
    ended = batches.end_if_done(batch_id, lambda b: ended_with.append(b.status) or [])
    assert ended.status is BatchStatus.cancelled and ended_with == [BatchStatus.cancelled]
    assert batches.end_if_done(batch_id, lambda b: ended_with.append(b.status) or []) is None  # once
    assert_counters_match_rows(batches, db, batch_id)
    assert batches.get(batch_id).finished_at is not None


def test_dispatch_marks_follow_the_window_and_find_lost_messages(db):
    batches, batch_id = new_batch(db, 10)
    dispatch = BatchDispatchRepository(db)
    jobs = JobRepository(db)
    ids = item_ids(db, batch_id)
    assert dispatch.take_next(batch_id, 3) == ids[:3]
    assert dispatch.take_next(batch_id, 2) == ids[3:5]  # the marked ones are skipped
    assert dispatch.outstanding(batch_id) == 5
    jobs.claim(ids[0], lease_seconds=60)  # claimed: running, no longer "sent"
    assert dispatch.outstanding(batch_id) == 5
    assert dispatch.take_lost(batch_id, sent_before=utcnow() - timedelta(seconds=60)) == []
    assert sorted(dispatch.take_lost(batch_id, sent_before=utcnow() + timedelta(seconds=1))) == sorted(ids[1:5])
    dispatch.unsend(ids[1:3])
    assert dispatch.take_next(batch_id, 1) == [ids[1]]
    assert [b.id for b in dispatch.live()] == [batch_id]
    batches.request_cancel(batch_id, error=CANCELLED)
    assert dispatch.take_next(batch_id, 5) == []  # a cancelling batch sends nothing more


def test_an_intake_that_died_half_way_fails_and_leaves_no_items(db):
    project = ProjectRepository(db).ensure_project("p")
    batches = BatchRepository(db)
    new = NewBatch(project_id=project.id, task_template={"name": "t"})
    batch_id = batches.create(new)
    batches.add_items(batch_id, new, [NewItem("a", 1, {})], first_seq=1)
    assert batches.fail_abandoned_intakes(idle_since=utcnow() - timedelta(minutes=5)) == 0
    assert batches.fail_abandoned_intakes(idle_since=utcnow() + timedelta(seconds=1)) == 1
    assert batches.get(batch_id).status is BatchStatus.failed
    assert item_ids(db, batch_id) == []
    with db.transaction() as session:
        assert session.scalar(select(Batch.total).where(Batch.id == batch_id)) == 0
