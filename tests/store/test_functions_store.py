"""Functions, datasets and feedback storage on both backends (Postgres and SQLite), and migration 0002."""

from __future__ import annotations

import uuid

import pytest
from alembic import command
from sqlalchemy import delete, func, select

from app.errors import Conflict
from app.store.datasets import DatasetRepository, NewEntry
from app.store.db import Database, alembic_config, run_migrations
from app.store.feedback import ExampleToSave, FeedbackRepository, latest_feedback
from app.store.functions import FunctionDefinition, FunctionPatch, FunctionRepository
from app.store.tables import Function, FunctionRevision, Project, Span
from app.store.tables_functions import Dataset, DatasetEntry, SpanFeedback
from tests.stack import drop_pg_schema, new_pg_schema


def test_create_update_and_revisions(shared_db, project):
    functions = FunctionRepository(shared_db)
    made = functions.create(project, "f", FunctionDefinition(instructions="one", description="d"))
    assert made.dataset_id and made.definition.description == "d"
    with pytest.raises(Conflict):
        functions.create(project, "f", FunctionDefinition(instructions="two"))

    patch = FunctionPatch(values=FunctionDefinition(instructions="two"), fields=frozenset({"instructions"}))
    second = functions.update(project, made.id, patch)
    assert second.definition == FunctionDefinition(instructions="two", description="d")
    assert functions.update(project, made.id, patch).revision_id == second.revision_id  # no change, no revision
    revisions, total = functions.revisions(project, made.id, offset=0, limit=10)
    assert total == 2 and [r.id for r in revisions] == [second.revision_id, made.revision_id]
    assert functions.at_revision(project, made.id, made.revision_id).definition.instructions == "one"
    assert functions.at_revision(project, made.id, str(uuid.uuid4())) is None
    assert functions.get(str(uuid.uuid4()), made.id) is None


def test_call_definitions_keep_function_settings(shared_db, project):
    functions = FunctionRepository(shared_db)
    call_definition = {"instructions": "x", "input_schema": None, "output_schema": None, "model": None}
    ref = functions.ensure_for_call(project, "by-call", {**call_definition, "configuration": None})
    patch = FunctionPatch(
        values=FunctionDefinition(instructions="x", description="kept", configuration={"feedback.auto_save": False}),
        fields=frozenset({"description", "configuration"}),
    )
    updated = functions.update(project, ref.function_id, patch)
    again = functions.ensure_for_call(project, "by-call", {**call_definition, "configuration": None})
    assert again.revision_id == updated.revision_id
    changed = functions.ensure_for_call(
        project, "by-call", {**call_definition, "configuration": {"invocation.cache.ttl": 5}}
    )
    definition = functions.get(project, ref.function_id).definition
    assert changed.revision_id != updated.revision_id and definition.description == "kept"
    assert definition.configuration == {"feedback.auto_save": False, "invocation.cache.ttl": 5}


def test_delete_cascades_to_revisions_dataset_and_entries(shared_db, project):
    functions, datasets = FunctionRepository(shared_db), DatasetRepository(shared_db)
    made = functions.create(project, "gone", FunctionDefinition(instructions="x"))
    datasets.create_entry(project, made.dataset_id, NewEntry(input="a", output="b"))
    assert functions.delete(project, made.id)
    with shared_db.transaction() as session:
        for table, column in ((FunctionRevision, FunctionRevision.function_id), (Dataset, Dataset.function_id)):
            assert session.scalar(select(func.count()).select_from(table).where(column == made.id)) == 0
        count = select(func.count()).select_from(DatasetEntry).where(DatasetEntry.dataset_id == made.dataset_id)
        assert session.scalar(count) == 0


def test_feedback_with_example_is_atomic_and_follows_its_span(shared_db, project):
    functions = FunctionRepository(shared_db)
    made = functions.create(project, "fb", FunctionDefinition(instructions="x"))
    with shared_db.transaction() as session:
        span = Span(project_id=project, trace_id=str(uuid.uuid4()), name="fb", type="call", function_id=made.id)
        session.add(span)
        session.flush()
        span_id = span.id
    example = ExampleToSave(made.id, NewEntry(input="q", output="a", source_span_id=span_id))
    feedback, entry = FeedbackRepository(shared_db).submit(project, span_id, 1.0, "good", example)
    assert feedback.example_saved and feedback.dataset_entry_id == entry.id and entry.dataset_id == made.dataset_id
    _, again = FeedbackRepository(shared_db).submit(project, span_id, 0.5, None, example)
    assert again.id == entry.id  # one entry per source span
    assert latest_feedback(shared_db, project, span_id).score == 0.5
    assert latest_feedback(shared_db, str(uuid.uuid4()), span_id) is None
    with shared_db.transaction() as session:
        session.execute(delete(Span).where(Span.id == span_id))
    with shared_db.transaction() as session:
        assert (
            session.scalar(select(func.count()).select_from(SpanFeedback).where(SpanFeedback.span_id == span_id)) == 0
        )


def test_migration_backfills_datasets_of_existing_functions(tmp_path):
    pg_schema, pg_url = new_pg_schema()
    for url, schema in ((f"sqlite:///{tmp_path / 'old.sqlite3'}", None), (pg_url, pg_schema)):
        try:
            command.upgrade(alembic_config(url), "0001")
            database = Database(url)
            with database.transaction() as session:
                project = Project(name="old")
                session.add(project)
                session.flush()
                session.add(Function(project_id=project.id, name="legacy"))
            run_migrations(url)
            with database.transaction() as session:
                function_id = session.scalar(select(Function.id))
                assert session.scalar(select(Dataset.function_id)) == function_id
            database.dispose()
        finally:
            if schema:
                drop_pg_schema(schema)
