"""A project's catalog as the API caches it: what its model names mean and its functions' current
revisions, read at one catalog version, and the version bump every change to them makes.

Every write to a project's functions (a new revision, a rename, a delete), aliases or custom models
calls `bump_catalog_version` (app/store/projects.py) in its own transaction. A reader takes the
version *first* and the rows after, so rows it reads are never older than the version it records: a job written with
`JobRepository.create(..., catalog_version=v)` succeeds only while `v` is still current, and a cache
that went stale (a write in another process) makes the write fail and the cache reload instead.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, bindparam, select

from app.store.db import Database
from app.store.functions import CURRENT_REVISION
from app.store.tables import Project
from app.store.tables_models import CustomModel, ModelAlias

MAX_CACHED_MODEL_NAMES = 2_000  # a project with more aliases and custom models is not cached

_VERSION = select(Project.catalog_version).where(Project.id == bindparam("p_project"))
_ALIASES = select(ModelAlias.name, ModelAlias.fallback_models).where(ModelAlias.project_id == bindparam("p_project"))
_CUSTOM = select(CustomModel.name, CustomModel.id).where(CustomModel.project_id == bindparam("p_project"))


@dataclass(frozen=True)
class CurrentRevision:
    """A function's current revision, as `ensure_for_call` compares a call's definition with it."""

    function_id: str
    revision_id: str
    definition: dict[str, Any]
    digest: str


@dataclass
class CatalogSnapshot:
    """A project's model names and (some of) its functions' current revisions at `version`."""

    version: int
    aliases: dict[str, tuple[str, ...]]
    custom_ids: dict[str, str]  # custom model name -> id
    functions: dict[str, CurrentRevision | None] = field(default_factory=dict)  # None: no such function yet

    @property
    def owned_custom_ids(self) -> set[str]:
        return set(self.custom_ids.values())


class CatalogReader:
    def __init__(self, db: Database) -> None:
        self.db = db

    def load(self, project_id: str, function_names: Collection[str]) -> CatalogSnapshot | None:
        """The catalog now, with these functions' current revisions; None when it is too large to cache."""
        params = {"p_project": project_id}
        with self.db.autocommit() as connection:
            version = connection.execute(_VERSION, params).scalar_one_or_none() or 0
            aliases = {row.name: tuple(row.fallback_models or ()) for row in connection.execute(_ALIASES, params)}
            custom = {row.name: row.id for row in connection.execute(_CUSTOM, params)}
            if len(aliases) + len(custom) > MAX_CACHED_MODEL_NAMES:
                return None
            snapshot = CatalogSnapshot(version, aliases, custom)
            for name in function_names:
                snapshot.functions[name] = _current_revision(connection, project_id, name)
        return snapshot

    def function_at(self, project_id: str, name: str) -> tuple[int, CurrentRevision | None]:
        """(catalog version, the function's current revision), the version read first."""
        with self.db.autocommit() as connection:
            version = connection.execute(_VERSION, {"p_project": project_id}).scalar_one_or_none() or 0
            return version, _current_revision(connection, project_id, name)


def _current_revision(connection: Connection, project_id: str, name: str) -> CurrentRevision | None:
    row = connection.execute(CURRENT_REVISION, {"p_project": project_id, "p_name": name}).first()
    if row is None:
        return None
    return CurrentRevision(row.id, row.revision_id, row.definition, row.digest)
