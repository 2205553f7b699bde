"""The statements that write a new job's row: plain, and only while the project's catalog is still at
the version its call was resolved with (the API's cached catalog, store/catalog.py)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, cast, exists, insert, select

from app.store.job_records import NewJob
from app.store.tables import Job, JobStatus, Project, new_id, utcnow

_jobs = Job.__table__
INSERT_JOB = insert(_jobs).returning(*_jobs.c)


def new_job_values(new: NewJob) -> dict[str, Any]:
    """The columns of a new job's row (its ids made here)."""
    return {
        "id": new_id(),
        "span_id": new_id(),
        "project_id": new.project_id,
        "task": new.task,
        "trace_id": new.trace_id,
        "function_id": new.function_id,
        "revision_id": new.revision_id,
        "parent_span_id": new.parent_span_id,
        "status": JobStatus.queued,
        "delivery_attempts": 0,
        "created_at": utcnow(),
        "stream": new.delivery.stream,
        "webhook_url": new.delivery.webhook_url,
        "webhook_secrets": list(new.delivery.webhook_secrets) or None,
        "meta": new.delivery.meta,
        "trace_context": new.trace_context,
    }


# The columns a new job's row sets, in one place: what `new_job_values` writes.
_NEW_JOB_COLUMNS = tuple(new_job_values(NewJob(project_id="", task={}, trace_id="")))


def _insert_at_catalog_version(typed: bool):  # noqa: ANN202 - a prebuilt statement
    """INSERT ... SELECT <the row> WHERE the project's catalog version is still `p_version`: the job of a
    call resolved from a cached catalog is written only if that cache was current (store/catalog.py).
    Postgres needs the parameters cast to the columns' types (an untyped text is no jsonb); SQLite must
    not have them cast (CAST(... AS JSON) would make numbers of JSON text)."""
    values = [bindparam(name, type_=_jobs.c[name].type) for name in _NEW_JOB_COLUMNS]
    if typed:
        values = [cast(value, _jobs.c[name].type) for value, name in zip(values, _NEW_JOB_COLUMNS, strict=True)]
    current = exists().where(Project.id == bindparam("p_project"), Project.catalog_version == bindparam("p_version"))
    return insert(_jobs).from_select(_NEW_JOB_COLUMNS, select(*values).where(current)).returning(*_jobs.c)


INSERT_JOB_AT_VERSION = {"postgresql": _insert_at_catalog_version(True), "sqlite": _insert_at_catalog_version(False)}
