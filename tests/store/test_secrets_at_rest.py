"""Secrets at rest (issue 15 item 6): webhook signing secrets stored as tokens of CONVEYOR_SECRET_KEY, the
migration that seals the ones stored before it (Postgres and SQLite, the embedded mode's database),
and API key prefixes kept only of long keys."""

from __future__ import annotations

import uuid

import pytest
from alembic import command
from sqlalchemy import insert, select, text

from app.secrets import SecretBox, SecretUnreadable
from app.services.webhooks import generate_secret, open_secrets, seal_secrets
from app.store.db import Database, alembic_config, run_migrations
from app.store.job_inserts import new_job_values
from app.store.job_records import DeliveryOptions, NewJob
from app.store.projects import ProjectRepository, generate_key
from app.store.tables import ApiKey, Job
from tests.stack import drop_pg_schema, new_pg_schema

SECRET_KEY = "at-rest-" + uuid.uuid4().hex
ADDED_SINCE = {"trace_context"}  # job columns of migrations after 0011 (0012_trace_context)


@pytest.fixture(params=["postgresql", "sqlite"])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'conveyor.sqlite3'}"
        return
    schema, url = new_pg_schema()
    yield url
    drop_pg_schema(schema)


def test_the_migration_seals_stored_webhook_secrets_and_clears_key_prefixes(database_url):
    command.upgrade(alembic_config(database_url), "0010_catalog_version")  # the schema before it
    db = Database(database_url)
    try:
        projects = ProjectRepository(db)
        project = projects.ensure_project("at-rest")
        projects.add_key(project, "short-key")
        with db.transaction() as session:  # as 0010 stored every key: its first 8 characters
            session.execute(text("UPDATE api_keys SET prefix = 'short-ke'"))
        plain = (generate_secret(), generate_secret())
        delivery = DeliveryOptions(webhook_url="https://example.com/hook", webhook_secrets=plain)
        job = new_job_values(NewJob(project_id=project.id, task={}, trace_id="t", delivery=delivery))
        with db.transaction() as session:  # the row as 0010 wrote it: without the columns later migrations add
            session.execute(insert(Job).values({k: v for k, v in job.items() if k not in ADDED_SINCE}))

        run_migrations(database_url, secret_key=SECRET_KEY)

        with db.transaction() as session:
            stored = session.scalar(select(Job.webhook_secrets).where(Job.id == job["id"]))
            prefixes = session.scalars(select(ApiKey.prefix)).all()
        assert not any(secret in token for secret in plain for token in stored)
        assert open_secrets(stored, SecretBox(SECRET_KEY)) == plain
        assert prefixes == [""]
        assert projects.project_for_key("short-key").id == project.id  # the key itself still works
    finally:
        db.dispose()


def test_new_keys_keep_a_prefix_only_when_long(database_url):
    run_migrations(database_url)
    db = Database(database_url)
    try:
        projects = ProjectRepository(db)
        project = projects.ensure_project("prefixes")
        generated = generate_key()
        projects.add_key(project, generated)
        projects.add_key(project, "change-me")
        with db.transaction() as session:
            prefixes = set(session.scalars(select(ApiKey.prefix)).all())
        assert prefixes == {generated[:8], ""}
    finally:
        db.dispose()


def test_sealed_secrets_open_only_with_their_key():
    plain = (generate_secret(),)
    sealed = seal_secrets(plain, SecretBox(SECRET_KEY))
    assert not sealed[0].startswith("whsec_") and open_secrets(sealed, SecretBox(SECRET_KEY)) == plain
    assert seal_secrets(plain, None) == plain and open_secrets(plain, None) == plain  # no key: as given
    with pytest.raises(SecretUnreadable):
        open_secrets(sealed, None)
    with pytest.raises(SecretUnreadable):
        open_secrets(sealed, SecretBox("another key"))
