"""Storage tests run on both backends: Postgres (a fresh schema of the shared server) and SQLite (a
file in the test's temporary directory), migrated as at every start-up.

`db` is a database of the test's own (for tests that count rows across the whole database);
`shared_db` is one database per module and backend, and `project` a fresh project on it, for tests
that only ever look at their own project's rows (migrating once per module keeps them fast).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.store.db import Database, run_migrations
from app.store.tables import Project
from tests.stack import drop_pg_schema, new_pg_schema

BACKENDS = ["postgresql", "sqlite"]


@contextlib.contextmanager
def migrated_database(backend: str, directory: Path) -> Iterator[Database]:
    """A migrated, empty database on `backend`, dropped (Postgres) on the way out."""
    if backend == "postgresql":
        schema, url = new_pg_schema()
    else:
        schema, url = None, f"sqlite:///{directory / 'conveyor.sqlite3'}"
    database = None
    try:
        run_migrations(url)
        database = Database(url)
        yield database
    finally:
        if database is not None:
            database.dispose()
        if schema:
            drop_pg_schema(schema)


@pytest.fixture(params=BACKENDS)
def db(request, tmp_path) -> Iterator[Database]:
    with migrated_database(request.param, tmp_path) as database:
        yield database


@pytest.fixture(scope="module", params=BACKENDS)
def shared_db(request, tmp_path_factory) -> Iterator[Database]:
    with migrated_database(request.param, tmp_path_factory.mktemp("db")) as database:
        yield database


@pytest.fixture
def project(shared_db: Database) -> str:
    """The id of a fresh project on `shared_db`."""
    with shared_db.transaction() as session:
        row = Project(name=f"p-{uuid.uuid4().hex[:8]}")
        session.add(row)
        session.flush()
        return row.id
