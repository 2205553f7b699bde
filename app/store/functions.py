"""Functions (named tasks), their immutable revisions, and the dataset each one owns."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Select, bindparam, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.errors import Conflict
from app.store.datasets import ensure_dataset
from app.store.db import Database
from app.store.projects import bump_catalog_version
from app.store.tables import Function, FunctionRevision, new_id, utcnow
from app.store.tables_functions import Dataset
from app.store.upsert import insert_ignore

# Function-level settings kept in `configuration` that `/call` cannot express (the SDK drops unknown
# configuration keys), so a revision recorded by `/call` carries them over from the current one.
AUTO_SAVE_KEY = "feedback.auto_save"
_CARRIED_CONFIGURATION_KEYS = (AUTO_SAVE_KEY,)

FunctionSort = Literal["name", "-name", "created_at", "-created_at"]


@dataclass(frozen=True)
class FunctionDefinition:
    """What one revision records. `model` is the wire form (a string, an object or a fallback list)."""

    instructions: str
    input_schema: dict[str, Any] | None = None
    output_schema: dict[str, Any] | None = None
    model: Any = None
    configuration: dict[str, Any] | None = None
    description: str | None = None

    def to_json(self) -> dict[str, Any]:
        data = {
            "instructions": self.instructions,
            "input_schema": self.input_schema,
            "output_schema": self.output_schema,
            "model": self.model,
            "configuration": self.configuration,
        }
        if self.description is not None:  # absent, not null, so `/call` definitions keep their digest
            data["description"] = self.description
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FunctionDefinition:
        return cls(
            instructions=data.get("instructions") or "",
            input_schema=data.get("input_schema"),
            output_schema=data.get("output_schema"),
            model=data.get("model"),
            configuration=data.get("configuration"),
            description=data.get("description"),
        )


@dataclass(frozen=True)
class FunctionPatch:
    """A PATCH: `fields` names what the caller sent (an explicit null clears the field)."""

    values: FunctionDefinition
    name: str | None = None
    fields: frozenset[str] = field(default_factory=frozenset)

    def apply(self, current: FunctionDefinition) -> FunctionDefinition:
        changes = {name: getattr(self.values, name) for name in self.fields if name != "name"}
        return replace(current, **changes)


@dataclass(frozen=True)
class FunctionRef:
    function_id: str
    revision_id: str


@dataclass(frozen=True)
class FunctionRecord:
    id: str
    project_id: str
    name: str
    revision_id: str
    definition: FunctionDefinition
    dataset_id: str | None
    created_at: datetime


@dataclass(frozen=True)
class RevisionRecord:
    id: str
    function_id: str
    definition: FunctionDefinition
    created_at: datetime


def definition_digest(definition: dict[str, Any]) -> str:
    canonical = json.dumps(definition, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def matches_revision(current_definition: dict[str, Any], current_digest: str, definition: dict[str, Any]) -> bool:
    """Whether a `/call`'s definition is the function's current revision (its carried-over fields aside)."""
    return definition_digest(_carry_over(current_definition, definition)) == current_digest


def _carry_over(current: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """`new` plus the function-level fields of `current` that a `/call` request cannot carry."""
    merged = dict(new)
    if current.get("description") is not None and "description" not in new:
        merged["description"] = current["description"]
    kept = {k: v for k, v in (current.get("configuration") or {}).items() if k in _CARRIED_CONFIGURATION_KEYS}
    if kept:
        merged["configuration"] = {**kept, **(new.get("configuration") or {})}
    return merged


def _name_taken(name: str | None) -> Conflict:
    return Conflict(f"a function named {name!r} already exists", detail=f"name: {name!r} is taken")


def _selection() -> Select:
    return (
        select(Function, FunctionRevision, Dataset.id)
        .join(FunctionRevision, FunctionRevision.id == Function.current_revision_id)
        .outerjoin(Dataset, Dataset.function_id == Function.id)
    )


def _record(function: Function, revision: FunctionRevision, dataset_id: str | None) -> FunctionRecord:
    return FunctionRecord(
        id=function.id,
        project_id=function.project_id,
        name=function.name,
        revision_id=revision.id,
        definition=FunctionDefinition.from_json(revision.definition),
        dataset_id=dataset_id,
        created_at=function.created_at,
    )


def _add_revision(session: Session, function: Function, definition: dict[str, Any]) -> FunctionRevision:
    revision = FunctionRevision(function_id=function.id, definition=definition, digest=definition_digest(definition))
    session.add(revision)
    session.flush()
    session.execute(
        update(Function).where(Function.id == function.id).values(current_revision_id=revision.id, updated_at=utcnow())
    )
    ensure_dataset(session, function.project_id, function.id)  # so functions made by `/call` have one too
    bump_catalog_version(session, function.project_id)
    return revision


# Read by every call (the API's hot path): built once and run outside the ORM session, as composing
# and cache-keying the query anew per call cost more CPU than running it.
CURRENT_REVISION = (
    select(Function.id, FunctionRevision.id.label("revision_id"), FunctionRevision.definition, FunctionRevision.digest)
    .join(FunctionRevision, FunctionRevision.id == Function.current_revision_id)
    .where(Function.project_id == bindparam("p_project"), Function.name == bindparam("p_name"))
)


class FunctionRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def ensure_for_call(
        self, project_id: str, name: str, definition: FunctionDefinition | dict[str, Any]
    ) -> FunctionRef:
        """Create the function on first use; record a new revision when the definition changed."""
        if isinstance(definition, FunctionDefinition):
            definition = definition.to_json()
        # Fast path, no lock: the usual call repeats the current definition.
        with self.db.autocommit() as connection:
            current = connection.execute(CURRENT_REVISION, {"p_project": project_id, "p_name": name}).first()
        if current is not None and matches_revision(current.definition, current.digest, definition):
            return FunctionRef(current.id, current.revision_id)
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
                if current is not None:
                    definition = _carry_over(current.definition, definition)
                    if current.digest == definition_digest(definition):
                        return FunctionRef(function.id, current.id)
            revision = _add_revision(session, function, definition)
            return FunctionRef(function.id, revision.id)

    def create(self, project_id: str, name: str, definition: FunctionDefinition) -> FunctionRecord:
        """A new function with its first revision and its dataset; Conflict when the name is taken."""
        try:
            with self.db.transaction() as session:
                if session.scalar(select(Function.id).where(Function.project_id == project_id, Function.name == name)):
                    raise _name_taken(name)
                function = Function(project_id=project_id, name=name)
                session.add(function)
                session.flush()
                _add_revision(session, function, definition.to_json())
                function_id = function.id
        except IntegrityError:  # a concurrent create of the same name won
            raise _name_taken(name) from None
        return self.get(project_id, function_id)

    def get(self, project_id: str, function_id: str) -> FunctionRecord | None:
        return self._one(Function.id == function_id, project_id)

    def get_by_name(self, project_id: str, name: str) -> FunctionRecord | None:
        return self._one(Function.name == name, project_id)

    def _one(self, condition: Any, project_id: str) -> FunctionRecord | None:
        with self.db.transaction() as session:
            row = session.execute(_selection().where(condition, Function.project_id == project_id)).first()
            return _record(*row) if row else None

    def list(
        self, project_id: str, *, name: str | None, sort: FunctionSort, offset: int, limit: int
    ) -> tuple[list[FunctionRecord], int]:
        """A page of functions; `name` filters on a case-insensitive substring. Ties break on id."""
        conditions = [Function.project_id == project_id]
        if name:
            escaped = name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            conditions.append(Function.name.ilike(f"%{escaped}%", escape="\\"))
        column = Function.name if sort.lstrip("-") == "name" else Function.created_at
        order = (column.desc(), Function.id.desc()) if sort.startswith("-") else (column.asc(), Function.id.asc())
        with self.db.transaction() as session:
            total = session.scalar(select(func.count()).select_from(Function).where(*conditions))
            rows = session.execute(_selection().where(*conditions).order_by(*order).offset(offset).limit(limit))
            return [_record(*row) for row in rows], total or 0

    def update(self, project_id: str, function_id: str, patch: FunctionPatch) -> FunctionRecord | None:
        """Apply a PATCH under the function's row lock; a changed definition becomes a new revision."""
        try:
            with self.db.transaction() as session:
                function = session.scalars(
                    select(Function)
                    .where(Function.id == function_id, Function.project_id == project_id)
                    .with_for_update()
                ).first()
                if function is None:
                    return None
                current = session.get(FunctionRevision, function.current_revision_id)
                definition = patch.apply(FunctionDefinition.from_json(current.definition)).to_json()
                if definition_digest(definition) != current.digest:
                    _add_revision(session, function, definition)
                if "name" in patch.fields and patch.name and patch.name != function.name:
                    function.name = patch.name
                    function.updated_at = utcnow()
                    session.flush()
                    bump_catalog_version(session, project_id)
        except IntegrityError:  # the new name is taken
            raise _name_taken(patch.name) from None
        return self.get(project_id, function_id)

    def delete(self, project_id: str, function_id: str) -> bool:
        """Delete a function with its revisions, dataset and entries. Jobs and spans keep their ids."""
        with self.db.transaction() as session:
            function = session.scalars(
                select(Function).where(Function.id == function_id, Function.project_id == project_id)
            ).first()
            if function is None:
                return False
            session.delete(function)
            bump_catalog_version(session, project_id)
            return True

    def revisions(
        self, project_id: str, function_id: str, *, offset: int, limit: int
    ) -> tuple[list[RevisionRecord], int] | None:
        """A page of a function's revisions, newest first; None when the project has no such function."""
        with self.db.transaction() as session:
            exists = session.scalar(
                select(Function.id).where(Function.id == function_id, Function.project_id == project_id)
            )
            if exists is None:
                return None
            where = FunctionRevision.function_id == function_id
            total = session.scalar(select(func.count()).select_from(FunctionRevision).where(where))
            rows = session.scalars(
                select(FunctionRevision)
                .where(where)
                .order_by(FunctionRevision.created_at.desc(), FunctionRevision.id.desc())
                .offset(offset)
                .limit(limit)
            )
            revisions = [
                RevisionRecord(r.id, r.function_id, FunctionDefinition.from_json(r.definition), r.created_at)
                for r in rows
            ]
            return revisions, total or 0

    def at_revision(self, project_id: str, function_id: str, revision_id: str | None) -> FunctionRecord | None:
        """The function as it was at `revision_id` (its current revision when None)."""
        record = self.get(project_id, function_id)
        if record is None or revision_id is None or revision_id == record.revision_id:
            return record
        with self.db.transaction() as session:
            revision = session.scalars(
                select(FunctionRevision).where(
                    FunctionRevision.id == revision_id, FunctionRevision.function_id == function_id
                )
            ).first()
            if revision is None:
                return None
            return replace(
                record, revision_id=revision.id, definition=FunctionDefinition.from_json(revision.definition)
            )
