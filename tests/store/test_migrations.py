"""The Alembic migrations build exactly the schema the table classes describe, on both backends."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine

from app.store.all_tables import metadata
from app.store.db import alembic_config, run_migrations
from tests.stack import drop_pg_schema, new_pg_schema


def test_one_head():
    assert len(ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads()) == 1


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
def test_migrated_schema_matches_the_tables(backend, tmp_path):
    schema = None
    if backend == "postgresql":
        schema, url = new_pg_schema()
    else:
        url = f"sqlite:///{tmp_path / 'm.sqlite3'}"
    try:
        run_migrations(url)
        run_migrations(url)  # idempotent at every start-up
        engine = create_engine(url)
        with engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), metadata)
        engine.dispose()
        assert differences == []
    finally:
        if schema:
            drop_pg_schema(schema)
