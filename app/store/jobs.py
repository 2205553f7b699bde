"""The job state machine: create, claim with a lease (one job or many), renew, finish once (one job or
many, with their spans, deliveries and batch counters), cancel, and hand a deferred job back; listing.

Every transition is a single conditional UPDATE, so two workers holding the same job (a broker
redelivery, a lease recovery racing a slow worker) can never both write a result: only the holder of
the current lease token can finish the job, and only while it is still running. Expired leases and
stranded jobs are recovered in app/store/job_recovery.py; the API's own INSERT on its event loop is
app/store/async_jobs.py.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import JSON, String, any_, bindparam, delete, func, select, update
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from app.store import batch_counters
from app.store.batch_counters import CounterDelta
from app.store.db import Database
from app.store.idempotency import bind_in
from app.store.job_inserts import INSERT_JOB, INSERT_JOB_AT_VERSION, new_job_values
from app.store.job_records import Claim, Finish, JobFilters, JobRecord, NewJob
from app.store.raw_sql import RawStatement, autocommit_driver, driver_transaction, returned_rows
from app.store.rows import NewRow, insert_objects, rows_by_table
from app.store.tables import Base, Function, Job, JobStatus, Span, utcnow

# The state machine's statements, built once. A job's transitions are its worker's hot path: built per
# call, SQLAlchemy spends more CPU composing and cache-keying an UPDATE than running it, and the ORM
# session's unit of work as much again (measured: 1.7 ms of CPU per claim through the ORM, 0.5 ms here).
_jobs = Job.__table__
_JSON_OR_NULL = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")

_THIS_JOB = _jobs.c.id == bindparam("p_id")
_LEASE_HELD = (_THIS_JOB, _jobs.c.lease_token == bindparam("p_token"), _jobs.c.status == JobStatus.running)
# Read by every waiting call and every poll of a job: the ORM would cost it a millisecond of CPU.
_GET_JOB = select(*_jobs.c).where(_THIS_JOB)
_GET_PROJECT_JOB = _GET_JOB.where(_jobs.c.project_id == bindparam("p_project"))
_TAKE = {
    "status": JobStatus.running,
    "lease_token": bindparam("p_token"),
    "lease_expires_at": bindparam("p_expires"),
    "started_at": bindparam("p_now"),
    "dispatched_at": None,
    "delivery_attempts": _jobs.c.delivery_attempts + 1,
}
_CLAIM_QUEUED = update(_jobs).where(_THIS_JOB, _jobs.c.status == JobStatus.queued).values(**_TAKE).returning(*_jobs.c)
# Many queued jobs at once: a worker starting hundreds of jobs a second claims them a statement per moment.
_CLAIM_QUEUED_MANY = (
    update(_jobs)
    .where(_jobs.c.id.in_(bindparam("p_ids", expanding=True)), _jobs.c.status == JobStatus.queued)
    .values(**_TAKE)
    .returning(*_jobs.c)
)
# Postgres claims calls (no batch items, whose counters move in the same transaction) by one statement
# in autocommit: one round trip, not three (0.16 against 0.40 ms of CPU per claim). A lone id has its
# own statement (a prepared array form is planned blind to its length: a sequential scan on a small
# table); "not a batch item" implies no partial index's predicate, which misled plans on fresh tables.
_CALLS_QUEUED = (_jobs.c.status == JobStatus.queued, func.coalesce(_jobs.c.batch_id, "") == "")
_CLAIM_QUEUED_CALL = RawStatement.of(update(_jobs).where(_THIS_JOB, *_CALLS_QUEUED).values(**_TAKE).returning(*_jobs.c))
_CLAIM_QUEUED_CALLS = RawStatement.of(
    update(_jobs)
    .where(_jobs.c.id == any_(bindparam("p_ids", type_=ARRAY(String))), *_CALLS_QUEUED)
    .values(**_TAKE)
    .returning(*_jobs.c)
)
_CLAIM_EXPIRED = (
    update(_jobs)
    .where(_THIS_JOB, _jobs.c.status == JobStatus.running, _jobs.c.lease_expires_at < bindparam("p_now"))
    .values(**_TAKE)
    .returning(*_jobs.c)
)
_TOUCH = update(_jobs).where(_THIS_JOB).values(delivery_attempts=_jobs.c.delivery_attempts)
# Every lease a worker holds, in one statement. The pairs are matched as two IN lists, by id (the primary
# key) and by token (few: a claim statement takes a whole group under one), and paired up from what it
# returns. A row IN list of (id, token) pairs is planned as an OR of pairs: in bench.inflight (5,000
# calls of 30 s, 15 s leases) Postgres spent 0.86 ms per call with it, 0.36 with these two lists and
# 0.34 with one UPDATE per job. A job held by another worker has a token not in the list: untouched.
_RENEW_MANY = (
    update(_jobs)
    .where(
        _jobs.c.id.in_(bindparam("p_ids", expanding=True)),
        _jobs.c.lease_token.in_(bindparam("p_tokens", expanding=True)),
        _jobs.c.status == JobStatus.running,
    )
    .values(lease_expires_at=bindparam("p_expires"))
    .returning(_jobs.c.id, _jobs.c.lease_token)
)
RENEW_CHUNK = 1000  # pairs per statement: a worker with 5,000 calls in flight renews in five
_END_VALUES = {
    "status": bindparam("p_status"),
    "result": bindparam("p_result", type_=_JSON_OR_NULL),
    "error": bindparam("p_error", type_=_JSON_OR_NULL),
    "finished_at": bindparam("p_now"),
    "lease_token": None,
    "lease_expires_at": None,
    "dispatched_at": None,
}
_FINISH = update(_jobs).where(*_LEASE_HELD).values(**_END_VALUES).returning(_jobs.c.id, _jobs.c.batch_id)
_END_FROM = (
    update(_jobs)
    .where(_THIS_JOB, _jobs.c.status == bindparam("p_prior"))
    .values(**_END_VALUES)
    .returning(_jobs.c.id, _jobs.c.batch_id)
)


class JobRepository:
    """Every transition of a batch item also moves its batch's counters, in the same transaction."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._postgres = db.engine.dialect.name == "postgresql"

    def create(self, new: NewJob, *, catalog_version: int | None = None, durable: bool = True) -> JobRecord | None:
        """Write a queued job. With `catalog_version`, only while the project's catalog is still at that
        version (None otherwise: the caller resolved the call from a stale cache and must resolve again).

        `durable=False` (a caller that answers only with the job's result): the commit does not wait
        for the disk; the result's durable commit flushes it too, before anything is answered. Until
        then a database crash may lose the job, and its caller gets an error, never a 200 or 202."""
        values = new_job_values(new)
        with self.db.connection() if durable else self.db.relaxed_connection() as connection:
            if catalog_version is None:
                row = connection.execute(INSERT_JOB, values).one()
            else:
                statement = INSERT_JOB_AT_VERSION[connection.dialect.name]
                params = {**values, "p_project": new.project_id, "p_version": catalog_version}
                row = connection.execute(statement, params).first()
            if row is not None and new.idempotency is not None:
                bind_in(connection, new.idempotency, row.id)
            return JobRecord.of(row) if row is not None else None

    def make_durable(self, job_id: str) -> None:
        """Return once the job's row is on disk, however it was written. On Postgres a durable commit
        flushes the WAL up to itself, so rewriting the row in place (one WAL record) takes the row's
        first, relaxed commit along; a transaction that writes no WAL would not wait for the disk."""
        if self.db.engine.dialect.name == "postgresql":
            with self.db.connection() as connection:
                connection.execute(_TOUCH, {"p_id": job_id})

    def get(self, job_id: str, *, project_id: str | None = None) -> JobRecord | None:
        """A job by id; with `project_id`, only when it belongs to that project."""
        if project_id is None:
            statement, params = _GET_JOB, {"p_id": job_id}
        else:
            statement, params = _GET_PROJECT_JOB, {"p_id": job_id, "p_project": project_id}
        with self.db.autocommit() as connection:
            row = connection.execute(statement, params).first()
        return JobRecord.of(row) if row is not None else None

    def claim(self, job_id: str, lease_seconds: int) -> Claim | None:
        """Take a queued job, or a running one whose lease has expired. None: nothing to do."""
        now = utcnow()
        token = str(uuid.uuid4())
        expires = now + timedelta(seconds=lease_seconds)
        params = {"p_id": job_id, "p_token": token, "p_expires": expires, "p_now": now}
        with self.db.relaxed_connection() as connection:
            # Queued first, then an expired lease: a batch item's counters move only on the first.
            for prior, statement in ((JobStatus.queued, _CLAIM_QUEUED), (JobStatus.running, _CLAIM_EXPIRED)):
                row = connection.execute(statement, params).first()
                if row is None:
                    continue
                if row.batch_id is not None and prior is JobStatus.queued:
                    stripe = batch_counters.stripe_of(row.id)
                    batch_counters.add(connection, row.batch_id, stripe, CounterDelta(running=1), started=now)
                return Claim(JobRecord.of(row), token, expires)
            return None

    def claim_queued(self, job_ids: Sequence[str], lease_seconds: int) -> dict[str, Claim]:
        """Take those of `job_ids` that are queued, under one lease token (a lease is proven by its job
        id and token together): on Postgres, the jobs that are no batch items in one statement of its
        own; the rest in one transaction that moves each batch stripe once for its items. Ids left out
        (running, ended, unknown) are for `claim` one at a time."""
        now = utcnow()
        token = str(uuid.uuid4())
        expires = now + timedelta(seconds=lease_seconds)
        params = {"p_ids": sorted(set(job_ids)), "p_token": token, "p_expires": expires, "p_now": now}
        claims: dict[str, Claim] = {}
        if self._postgres:
            claims = {row.id: Claim(JobRecord.of(row), token, expires) for row in self._claim_calls(params)}
            params["p_ids"] = [job_id for job_id in params["p_ids"] if job_id not in claims]
            if not params["p_ids"]:
                return claims
        with self.db.relaxed_connection() as connection:
            rows = connection.execute(_CLAIM_QUEUED_MANY, params).all()
            started = Counter(batch_counters.stripe_key(row) for row in rows if row.batch_id is not None)
            moves = {stripe: CounterDelta(running=count) for stripe, count in started.items()}
            batch_counters.add_moves(connection, moves, now)
        return claims | {row.id: Claim(JobRecord.of(row), token, expires) for row in rows}

    def _claim_calls(self, params: dict[str, Any]) -> list[Any]:
        """Postgres: the rows of the jobs among `params["p_ids"]` that are queued calls, claimed."""
        one = len(params["p_ids"]) == 1
        statement = _CLAIM_QUEUED_CALL if one else _CLAIM_QUEUED_CALLS
        with autocommit_driver(self.db.relaxed_engine) as driver:
            return returned_rows(driver, statement, {**params, "p_id": params["p_ids"][0]} if one else params)

    def renew_many(self, held: Sequence[tuple[str, str]], lease_seconds: int) -> set[tuple[str, str]]:
        """Extend several held leases, (job id, token) each; the pairs renewed. A pair left out has lost
        its lease (taken over, cancelled or ended): stop working on that job."""
        expires = utcnow() + timedelta(seconds=lease_seconds)
        renewed: set[tuple[str, str]] = set()
        with self.db.relaxed_connection() as connection:
            for start in range(0, len(held), RENEW_CHUNK):
                chunk = held[start : start + RENEW_CHUNK]
                ids, tokens = sorted({job_id for job_id, _ in chunk}), sorted({token for _, token in chunk})
                params = {"p_ids": ids, "p_tokens": tokens, "p_expires": expires}
                renewed.update((row.id, row.lease_token) for row in connection.execute(_RENEW_MANY, params))
        return renewed & set(held)

    def finish(
        self,
        job_id: str,
        token: str,
        status: JobStatus,
        *,
        result: dict[str, Any] | None = None,
        error: dict[str, Any] | None = None,
        spans: Sequence[Span | NewRow] = (),
        extra_rows: Sequence[Base] = (),
    ) -> bool:
        """Write the one final state, its spans and `extra_rows` (its webhook delivery) atomically;
        False if this lease no longer holds."""
        return self.finish_many([Finish(job_id, token, status, result, error, spans, extra_rows)])[0]

    def finish_many(self, finishes: Sequence[Finish]) -> list[bool]:
        """Several `finish`es in one transaction, each applying only where its lease holds. All or
        nothing: on an error nothing is written, and the caller may write each alone."""
        return self._end(_FINISH, JobStatus.running, finishes, lambda finish: {"p_token": finish.token})

    def end_queued(self, endings: Sequence[Finish]) -> list[bool]:
        """Queued jobs ended without a claim (a provider batch answered them): each only while still
        queued, so an answer read twice ends its job once, and a cancelled job stays cancelled."""
        return self._end(_END_FROM, JobStatus.queued, endings, lambda _: {"p_prior": JobStatus.queued})

    def cancel(
        self,
        job_id: str,
        *,
        error: dict[str, Any],
        spans: Sequence[Span | NewRow] = (),
        extra_rows: Sequence[Base] = (),
    ) -> bool:
        """Move a queued or running job to `cancelled` with its rows; False if it had already ended.

        A running job's worker loses its lease with this (renew and finish need `running`)."""
        ending = Finish(job_id, None, JobStatus.cancelled, error=error, spans=spans, extra_rows=extra_rows)
        return any(
            self._end(_END_FROM, prior, [ending], lambda _, prior=prior: {"p_prior": prior})[0]
            for prior in (JobStatus.queued, JobStatus.running)
        )

    def _end(
        self,
        statement: Any,
        prior: JobStatus,
        endings: Sequence[Finish],
        conditions: Callable[[Finish], dict[str, Any]],
    ) -> list[bool]:
        """Final transitions from `prior`, in one transaction: a conditional UPDATE each, and the rows
        each brings (one INSERT per table for all) and its batch stripe's move only where it applied."""
        now = utcnow()
        params = [
            {
                "p_id": ending.job_id,
                "p_now": now,
                "p_status": ending.status,
                "p_result": ending.result,
                "p_error": ending.error,
                **conditions(ending),
            }
            for ending in endings
        ]
        if self._postgres:  # the same statements, sent by psycopg itself (app/store/raw_sql.py)
            with driver_transaction(self.db.engine) as transaction:
                ended = [transaction.first(statement, values) for values in params]
                rows, moves = _ending_writes(prior, endings, ended)
                for table, values in rows_by_table(rows).items():
                    transaction.insert(table, values)
                batch_counters.add_moves(transaction, moves)
        else:
            with self.db.connection() as connection:
                ended = [connection.execute(statement, values).first() for values in params]
                rows, moves = _ending_writes(prior, endings, ended)
                insert_objects(connection, rows)
                batch_counters.add_moves(connection, moves)
        return [row is not None for row in ended]

    def release(self, job_id: str, token: str, *, redispatch_at: datetime | None) -> JobRecord | None:
        """Hand a running job back to the queue without counting the delivery (it could not start: the
        rate limit had no room); None if this lease no longer holds. `redispatch_at` marks when its
        new broker message becomes due (batch items; see `dispatched_at`)."""
        with self.db.transaction() as session:
            job = session.scalars(
                update(Job)
                .where(Job.id == job_id, Job.lease_token == token, Job.status == JobStatus.running)
                .values(
                    status=JobStatus.queued,
                    lease_token=None,
                    lease_expires_at=None,
                    delivery_attempts=Job.delivery_attempts - 1,
                    dispatched_at=redispatch_at,
                )
                .returning(Job)
                .execution_options(synchronize_session=False)
            ).first()
            if job is None:
                return None
            if job.batch_id is not None:
                batch_counters.add(session, job.batch_id, batch_counters.stripe_of(job.id), CounterDelta(running=-1))
            return JobRecord.of(job)

    def find(self, project_id: str, filters: JobFilters, *, offset: int, limit: int) -> tuple[list[JobRecord], int]:
        """A page of the project's jobs matching `filters`, newest first, and the total count."""
        conditions = [Job.project_id == project_id]
        if filters.batch_id is not None:
            conditions.append(Job.batch_id == filters.batch_id)
        elif not filters.include_batch_items:
            conditions.append(Job.batch_id.is_(None))
        if filters.statuses:
            conditions.append(Job.status.in_(filters.statuses))
        if filters.function_name is not None:
            named = select(Function.id).where(Function.project_id == project_id, Function.name == filters.function_name)
            conditions.append(Job.function_id.in_(named))
        for key, value in filters.tags.items():
            conditions.append(Job.task[("tags", key)].as_string() == value)
        if filters.created_after is not None:
            conditions.append(Job.created_at >= filters.created_after)
        if filters.created_before is not None:
            conditions.append(Job.created_at < filters.created_before)
        with self.db.transaction() as session:
            total = session.scalar(select(func.count()).select_from(Job).where(*conditions)) or 0
            rows = session.scalars(
                select(Job).where(*conditions).order_by(Job.created_at.desc(), Job.id).offset(offset).limit(limit)
            )
            return [JobRecord.of(job) for job in rows], total

    def discard_queued(self, job_id: str) -> None:
        """Remove a job that never reached the queue (its enqueue failed), so nothing is half-written."""
        with self.db.transaction() as session:
            session.execute(
                delete(Job).where(Job.id == job_id, Job.status == JobStatus.queued, Job.delivery_attempts == 0)
            )


def _ending_writes(
    prior: JobStatus, endings: Sequence[Finish], ended: Sequence[Any]
) -> tuple[list[Base | NewRow], dict[tuple[str, int], CounterDelta]]:
    """What the endings that applied (`ended`: each one's returned row, or None) bring: their rows
    to insert, and the moves of their batch stripes."""
    rows: list[Base | NewRow] = []
    moves: dict[tuple[str, int], CounterDelta] = {}
    for ending, row in zip(endings, ended, strict=True):
        if row is None:
            continue
        rows += [*ending.spans, *ending.extra_rows]
        if row.batch_id is not None:
            stripe = batch_counters.stripe_key(row)
            delta = CounterDelta.ended(prior, ending.status, ending.spans)
            moves[stripe] = moves[stripe] + delta if stripe in moves else delta
    return rows, moves
