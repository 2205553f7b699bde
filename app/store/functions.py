"""Functions (named tasks) and their immutable revisions."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update

from app.store.db import Database
from app.store.tables import Function, FunctionRevision, new_id, utcnow
from app.store.upsert import insert_ignore


@dataclass(frozen=True)
class FunctionRef:
    function_id: str
    revision_id: str


def definition_digest(definition: dict[str, Any]) -> str:
    canonical = json.dumps(definition, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


class FunctionRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def ensure_for_call(self, project_id: str, name: str, definition: dict[str, Any]) -> FunctionRef:
        """Create the function on first use; record a new revision when the definition changed."""
        digest = definition_digest(definition)
        with self.db.transaction() as session:
            insert_ignore(
                session,
                Function.__table__,
                {"id": new_id(), "project_id": project_id, "name": name},
                ["project_id", "name"],
            )
            function = session.scalars(
                select(Function)
                .where(Function.project_id == project_id, Function.name == name)
                .with_for_update()  # serialises concurrent revision writes for one function
            ).one()
            if function.current_revision_id:
                current = session.get(FunctionRevision, function.current_revision_id)
                if current is not None and current.digest == digest:
                    return FunctionRef(function.id, current.id)
            revision = FunctionRevision(function_id=function.id, definition=definition, digest=digest)
            session.add(revision)
            session.flush()
            session.execute(
                update(Function)
                .where(Function.id == function.id)
                .values(current_revision_id=revision.id, updated_at=utcnow())
            )
            return FunctionRef(function.id, revision.id)
