"""Storage tests run on both backends: Postgres (a fresh schema of the shared server) and SQLite (a
file in the test's temporary directory), migrated as at every start-up.

`db` is an empty, migrated database of the test's own (for tests that count rows across the whole
database). Migrating takes about a second per backend, so it is done once per run: the SQLite file is
copied from a migrated template, and the Postgres schema is one migrated schema emptied before each
test (TRUNCATE of every table but alembic_version). tests/store/test_migrations.py checks the
migrations themselves. `shared_db` is one database per module and backend, and `project` a fresh
project on it, for tests that only ever look at their own project's rows.
"""

from __future__ import annotations

import contextlib
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import inspect

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


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("sqlite-template")
    run_migrations(f"sqlite:///{directory / 'conveyor.sqlite3'}")
    return directory / "conveyor.sqlite3"


@pytest.fixture(scope="session")
def _pg_database(tmp_path_factory) -> Iterator[Database]:
    with migrated_database("postgresql", tmp_path_factory.mktemp("pg")) as database:
        yield database


def _emptied(database: Database) -> Database:
    """Every table emptied (identities restarted), the migration record kept."""
    with database.engine.begin() as connection:
        tables = [f'"{name}"' for name in inspect(connection).get_table_names() if name != "alembic_version"]
        connection.exec_driver_sql(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")
    return database


@pytest.fixture(params=BACKENDS)
def db(request, tmp_path) -> Iterator[Database]:
    if request.param == "postgresql":
        yield _emptied(request.getfixturevalue("_pg_database"))
        return
    path = tmp_path / "conveyor.sqlite3"
    shutil.copyfile(request.getfixturevalue("_sqlite_template"), path)
    database = Database(f"sqlite:///{path}")
    yield database
    database.dispose()


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
