"""Repositories of a project's custom models and model aliases. Every read and write is scoped to a
project, except `CustomModelRepository.load`, which the worker uses on ids the API already checked."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, func, select
from sqlalchemy.exc import IntegrityError

from app.errors import Conflict, NotFound
from app.store.db import Database
from app.store.projects import bump_catalog_version
from app.store.tables import utcnow
from app.store.tables_models import CustomModel, ModelAlias


@dataclass(frozen=True)
class CustomModelRecord:
    id: str
    project_id: str
    name: str
    identifier: str
    extra: dict[str, Any]
    api_key_encrypted: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class CustomModelChanges:
    """A PATCH: None leaves a field as it is; `api_key_encrypted` applies only when `set_api_key`."""

    name: str | None = None
    identifier: str | None = None
    extra: dict[str, Any] | None = None
    set_api_key: bool = False
    api_key_encrypted: str | None = None


@dataclass(frozen=True)
class AliasRecord:
    id: str
    project_id: str
    name: str
    fallback_models: tuple[str, ...]
    description: str | None


@dataclass(frozen=True)
class AliasChanges:
    """A PATCH: None leaves a field as it is; `description` applies only when `set_description`."""

    name: str | None = None
    fallback_models: tuple[str, ...] | None = None
    set_description: bool = False
    description: str | None = None


def _custom(row: CustomModel) -> CustomModelRecord:
    return CustomModelRecord(
        row.id,
        row.project_id,
        row.name,
        row.identifier,
        dict(row.extra or {}),
        row.api_key_encrypted,
        row.created_at,
        row.updated_at,
    )


def _alias(row: ModelAlias) -> AliasRecord:
    return AliasRecord(row.id, row.project_id, row.name, tuple(row.fallback_models or ()), row.description)


class CustomModelRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def create(
        self, project_id: str, name: str, identifier: str, extra: dict[str, Any], api_key_encrypted: str | None
    ) -> CustomModelRecord:
        """Raises Conflict when the project already has a custom model of that name."""
        try:
            with self.db.transaction() as session:
                row = CustomModel(
                    project_id=project_id,
                    name=name,
                    identifier=identifier,
                    extra=extra,
                    api_key_encrypted=api_key_encrypted,
                )
                session.add(row)
                session.flush()
                bump_catalog_version(session, project_id)
                return _custom(row)
        except IntegrityError:
            raise _name_taken("custom model", name) from None

    def list(self, project_id: str, offset: int, limit: int) -> tuple[list[CustomModelRecord], int]:
        """A page in creation order (stable), and the project's total."""
        where = CustomModel.project_id == project_id
        with self.db.transaction() as session:
            total = session.scalar(select(func.count()).select_from(CustomModel).where(where)) or 0
            rows = session.scalars(
                select(CustomModel)
                .where(where)
                .order_by(CustomModel.created_at, CustomModel.id)
                .offset(offset)
                .limit(limit)
            )
            return [_custom(row) for row in rows], total

    def get(self, project_id: str, model_id: str) -> CustomModelRecord:
        with self.db.transaction() as session:
            return _custom(self._row(session, project_id, CustomModel.id == model_id, model_id))

    def get_by_name(self, project_id: str, name: str) -> CustomModelRecord:
        with self.db.transaction() as session:
            return _custom(self._row(session, project_id, CustomModel.name == name, name))

    def update(self, project_id: str, model_id: str, changes: CustomModelChanges) -> CustomModelRecord:
        try:
            with self.db.transaction() as session:
                row = self._row(session, project_id, CustomModel.id == model_id, model_id)
                if changes.name is not None:
                    row.name = changes.name
                if changes.identifier is not None:
                    row.identifier = changes.identifier
                if changes.extra is not None:
                    row.extra = changes.extra
                if changes.set_api_key:
                    row.api_key_encrypted = changes.api_key_encrypted
                row.updated_at = utcnow()
                session.flush()
                bump_catalog_version(session, project_id)
                return _custom(row)
        except IntegrityError:
            raise _name_taken("custom model", changes.name or "") from None

    def delete(self, project_id: str, model_id: str) -> None:
        with self.db.transaction() as session:
            result = session.execute(
                delete(CustomModel).where(CustomModel.project_id == project_id, CustomModel.id == model_id)
            )
            bump_catalog_version(session, project_id)
            if result.rowcount == 0:
                raise _not_found("custom model", model_id)

    def owned_ids(self, project_id: str, ids: Collection[str]) -> set[str]:
        """Those of `ids` that are custom models of the project."""
        if not ids:
            return set()
        with self.db.transaction() as session:
            rows = session.scalars(
                select(CustomModel.id).where(CustomModel.project_id == project_id, CustomModel.id.in_(list(ids)))
            )
            return set(rows)

    def load(self, model_id: str) -> CustomModelRecord | None:
        """Any project's custom model by id: for workers running a job the API already validated."""
        with self.db.transaction() as session:
            row = session.get(CustomModel, model_id)
            return _custom(row) if row is not None else None

    @staticmethod
    def _row(session: Any, project_id: str, condition: Any, shown: str) -> CustomModel:
        row = session.scalars(select(CustomModel).where(CustomModel.project_id == project_id, condition)).first()
        if row is None:
            raise _not_found("custom model", shown)
        return row


class AliasRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def create(
        self, project_id: str, name: str, fallback_models: tuple[str, ...], description: str | None
    ) -> AliasRecord:
        """Raises Conflict when the project already has an alias of that name."""
        try:
            with self.db.transaction() as session:
                row = ModelAlias(
                    project_id=project_id, name=name, fallback_models=list(fallback_models), description=description
                )
                session.add(row)
                session.flush()
                bump_catalog_version(session, project_id)
                return _alias(row)
        except IntegrityError:
            raise _name_taken("alias", name) from None

    def list(self, project_id: str, offset: int, limit: int) -> tuple[list[AliasRecord], int]:
        where = ModelAlias.project_id == project_id
        with self.db.transaction() as session:
            total = session.scalar(select(func.count()).select_from(ModelAlias).where(where)) or 0
            rows = session.scalars(
                select(ModelAlias)
                .where(where)
                .order_by(ModelAlias.created_at, ModelAlias.id)
                .offset(offset)
                .limit(limit)
            )
            return [_alias(row) for row in rows], total

    def get(self, project_id: str, alias_id: str) -> AliasRecord:
        with self.db.transaction() as session:
            return _alias(self._row(session, project_id, ModelAlias.id == alias_id, alias_id))

    def get_by_name(self, project_id: str, name: str) -> AliasRecord:
        with self.db.transaction() as session:
            return _alias(self._row(session, project_id, ModelAlias.name == name, name))

    def update(self, project_id: str, alias_id: str, changes: AliasChanges) -> AliasRecord:
        try:
            with self.db.transaction() as session:
                row = self._row(session, project_id, ModelAlias.id == alias_id, alias_id)
                if changes.name is not None:
                    row.name = changes.name
                if changes.fallback_models is not None:
                    row.fallback_models = list(changes.fallback_models)
                if changes.set_description:
                    row.description = changes.description
                row.updated_at = utcnow()
                session.flush()
                bump_catalog_version(session, project_id)
                return _alias(row)
        except IntegrityError:
            raise _name_taken("alias", changes.name or "") from None

    def delete(self, project_id: str, alias_id: str) -> None:
        with self.db.transaction() as session:
            result = session.execute(
                delete(ModelAlias).where(ModelAlias.project_id == project_id, ModelAlias.id == alias_id)
            )
            bump_catalog_version(session, project_id)
            if result.rowcount == 0:
                raise _not_found("alias", alias_id)

    @staticmethod
    def _row(session: Any, project_id: str, condition: Any, shown: str) -> ModelAlias:
        row = session.scalars(select(ModelAlias).where(ModelAlias.project_id == project_id, condition)).first()
        if row is None:
            raise _not_found("alias", shown)
        return row


@dataclass(frozen=True)
class NameMatches:
    """Which of some model names are the project's aliases (with their fallbacks) or custom models (ids)."""

    aliases: dict[str, tuple[str, ...]]
    custom_ids: dict[str, str]


# Every call looks its model names up in both tables: statements built once and run outside the ORM
# session (composing and cache-keying them per call was a quarter of the API's CPU per call).
_ALIASES_NAMED = select(ModelAlias.name, ModelAlias.fallback_models).where(
    ModelAlias.project_id == bindparam("p_project"), ModelAlias.name.in_(bindparam("p_names", expanding=True))
)
_CUSTOM_NAMED = select(CustomModel.name, CustomModel.id).where(
    CustomModel.project_id == bindparam("p_project"), CustomModel.name.in_(bindparam("p_names", expanding=True))
)


class ModelNameIndex:
    """The lookup behind every call's model names, in both tables."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def match(self, project_id: str, names: Collection[str]) -> NameMatches:
        if not names:
            return NameMatches({}, {})
        params = {"p_project": project_id, "p_names": list(names)}
        with self.db.autocommit() as connection:
            found = {row.name: tuple(row.fallback_models or ()) for row in connection.execute(_ALIASES_NAMED, params)}
            custom = {row.name: row.id for row in connection.execute(_CUSTOM_NAMED, params)}
        return NameMatches(found, custom)


def _name_taken(kind: str, name: str) -> Conflict:
    return Conflict(f"a {kind} named {name!r} already exists in this project", detail=f"name: {name!r} is taken")


def _not_found(kind: str, key: str) -> NotFound:
    return NotFound(f"{kind} not found", detail=f"no {kind} {key!r} in this project")
