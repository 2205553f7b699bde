"""Which writes wait for the disk: job rows and endings do; claims, renewals and the rows of calls
whose callers wait for the result go through the relaxed engine, and `make_durable` flushes them."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from app.store.db import Database, run_migrations
from app.store.jobs import JobRepository, NewJob
from app.store.projects import ProjectRepository
from tests.stack import drop_pg_schema, new_pg_schema


@pytest.fixture
def pg():
    schema, url = new_pg_schema()
    run_migrations(url)
    database = Database(url)
    yield database
    database.dispose()
    drop_pg_schema(schema)


def setting(connection) -> str:
    return connection.execute(text("SHOW synchronous_commit")).scalar_one()


def test_only_the_relaxed_engine_commits_without_waiting_for_the_disk(pg):
    with pg.connection() as connection:
        assert setting(connection) == "on"
    with pg.relaxed_connection() as connection:
        assert setting(connection) == "off"
    with pg.autocommit() as connection:
        assert setting(connection) == "on"


def test_make_durable_flushes_a_relaxed_job_row(pg):
    project = ProjectRepository(pg).ensure_project("p")
    jobs = JobRepository(pg)
    job = jobs.create(NewJob(project_id=project.id, task={"name": "t"}, trace_id="tr"), durable=False)
    with pg.autocommit() as connection:
        written = connection.execute(text("SELECT pg_current_wal_insert_lsn()")).scalar_one()
    jobs.make_durable(job.id)
    with pg.autocommit() as connection:
        flushed = connection.execute(text("SELECT pg_current_wal_flush_lsn() >= :lsn"), {"lsn": written})
        assert flushed.scalar_one() is True
    assert jobs.get(job.id) is not None


def test_sqlite_has_one_engine_and_make_durable_is_a_no_op(tmp_path):
    url = f"sqlite:///{tmp_path / 'c.sqlite3'}"
    run_migrations(url)
    database = Database(url)
    try:
        assert database.relaxed_engine is database.engine
        project = ProjectRepository(database).ensure_project("p")
        jobs = JobRepository(database)
        job = jobs.create(NewJob(project_id=project.id, task={"name": "t"}, trace_id="tr"), durable=False)
        jobs.make_durable(job.id)
        assert jobs.get(job.id).status.value == "queued"
    finally:
        database.dispose()
