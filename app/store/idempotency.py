"""Idempotency keys: reserve a key for a request, bind it to the job it created, or find its earlier use."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite

from app.store.db import Database
from app.store.tables import new_id, utcnow
from app.store.tables_delivery import IdempotencyKey

# A reservation that bound no job for this long belongs to a request whose process died.
STALE_RESERVATION = timedelta(seconds=60)


@dataclass
class KeyBinding:
    """A reserved key to bind to the job its request creates, in the transaction that writes the job
    (so no crash can leave a job whose key does not name it); `bound` says it was done there."""

    project_id: str
    key: str
    bound: bool = False


_BIND = (
    update(IdempotencyKey)
    .where(IdempotencyKey.project_id == bindparam("p_project"), IdempotencyKey.key == bindparam("p_key"))
    .values(job_id=bindparam("p_job"))
)


def bind_in(connection: Any, binding: KeyBinding, job_id: str) -> None:
    """Bind the key in the caller's transaction (a Connection or Session)."""
    connection.execute(_BIND, {"p_project": binding.project_id, "p_key": binding.key, "p_job": job_id})
    binding.bound = True


@dataclass(frozen=True)
class KeyUse:
    """An earlier use of a key: the request it came with, and its job (None while being accepted)."""

    request_digest: str
    job_id: str | None
    created_at: datetime


class IdempotencyRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def reserve(self, project_id: str, key: str, digest: str, *, stale_after: timedelta) -> KeyUse | None:
        """Claim `key` for a new request (None), or return its earlier use.

        A reservation whose request never bound a job within `stale_after` (its process died while
        accepting it) is taken over, so a crash cannot block a key forever."""
        now = utcnow()
        with self.db.transaction() as session:
            module = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
            inserted = session.execute(
                module.insert(IdempotencyKey)
                .values(id=new_id(), project_id=project_id, key=key, request_digest=digest, created_at=now)
                .on_conflict_do_nothing(index_elements=["project_id", "key"])
                .returning(IdempotencyKey.id)  # rowcount is not reliable for INSERT ... ON CONFLICT
            ).first()
            if inserted is not None:
                return None
            taken_over = session.execute(
                update(IdempotencyKey)
                .where(
                    IdempotencyKey.project_id == project_id,
                    IdempotencyKey.key == key,
                    IdempotencyKey.job_id.is_(None),
                    IdempotencyKey.created_at < now - stale_after,
                )
                .values(request_digest=digest, created_at=now)
                .execution_options(synchronize_session=False)
            ).rowcount
            if taken_over:
                return None
            row = session.scalars(
                select(IdempotencyKey).where(IdempotencyKey.project_id == project_id, IdempotencyKey.key == key)
            ).one()
            return KeyUse(row.request_digest, row.job_id, row.created_at)

    def bind(self, project_id: str, key: str, job_id: str) -> None:
        """The reserved key now answers with this job (the row is deleted with the job)."""
        with self.db.transaction() as session:
            session.execute(
                update(IdempotencyKey)
                .where(IdempotencyKey.project_id == project_id, IdempotencyKey.key == key)
                .values(job_id=job_id)
                .execution_options(synchronize_session=False)
            )

    def release(self, project_id: str, key: str) -> None:
        """Forget a reservation whose request failed before creating a job, so the key can be reused."""
        with self.db.transaction() as session:
            session.execute(
                delete(IdempotencyKey).where(
                    IdempotencyKey.project_id == project_id,
                    IdempotencyKey.key == key,
                    IdempotencyKey.job_id.is_(None),
                )
            )
