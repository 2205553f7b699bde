"""Projects and their API keys. Keys are only ever stored as SHA-256 digests."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, select, update

from app.store.db import Database
from app.store.tables import ApiKey, Project, new_id
from app.store.upsert import insert_ignore

DEFAULT_PROJECT = "default"
KEY_PREFIX = "cvy_"


_BUMP_CATALOG = (
    update(Project).where(Project.id == bindparam("p_project")).values(catalog_version=Project.catalog_version + 1)
)


def bump_catalog_version(connection: Any, project_id: str) -> None:
    """Call in the transaction of every change to a project's functions, aliases or custom models (a
    Connection or an ORM Session): API processes' cached copies of them stop being used (store/catalog.py)."""
    connection.execute(_BUMP_CATALOG, {"p_project": project_id})


@dataclass(frozen=True)
class ProjectRef:
    id: str
    name: str


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


# A key's first characters, kept beside its digest to tell keys apart, are kept only of a long key (a
# generated one is 47 characters): of a short configured key they would be most of it, or all of it.
PREFIX_CHARS = 8
PREFIX_MIN_KEY_LENGTH = 32


def key_prefix(key: str) -> str:
    return key[:PREFIX_CHARS] if len(key) >= PREFIX_MIN_KEY_LENGTH else ""


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


class ProjectRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def ensure_project(self, name: str) -> ProjectRef:
        with self.db.transaction() as session:
            insert_ignore(session, Project.__table__, {"id": new_id(), "name": name}, ["name"])
            project = session.scalars(select(Project).where(Project.name == name)).one()
            return ProjectRef(project.id, project.name)

    def add_key(self, project: ProjectRef, key: str) -> None:
        """Register `key` for `project`; registering the same key again is a no-op."""
        with self.db.transaction() as session:
            insert_ignore(
                session,
                ApiKey.__table__,
                {"id": new_id(), "project_id": project.id, "key_hash": hash_key(key), "prefix": key_prefix(key)},
                ["key_hash"],
            )

    def create_key(self, project_name: str) -> str:
        """Create the project if needed and return a new key for it (shown once, stored hashed)."""
        project = self.ensure_project(project_name)
        key = generate_key()
        self.add_key(project, key)
        return key

    def project_for_key(self, key: str) -> ProjectRef | None:
        with self.db.transaction() as session:
            row = session.execute(
                select(Project.id, Project.name)
                .join(ApiKey, ApiKey.project_id == Project.id)
                .where(ApiKey.key_hash == hash_key(key))
            ).first()
            return ProjectRef(row.id, row.name) if row else None
