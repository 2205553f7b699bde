"""Bearer-key authentication with a short in-process cache of key → project."""

from __future__ import annotations

import time

from starlette.concurrency import run_in_threadpool

from app.errors import Unauthorized
from app.store.projects import ProjectRef, ProjectRepository, hash_key

_CACHE_SECONDS = 30.0


class ApiKeyAuthenticator:
    def __init__(self, projects: ProjectRepository) -> None:
        self.projects = projects
        self._cache: dict[str, tuple[ProjectRef, float]] = {}

    async def authenticate(self, authorization: str | None) -> ProjectRef:
        if not authorization:
            raise Unauthorized(
                "missing API key", detail="send the header `Authorization: Bearer <your Conveyor API key>`"
            )
        scheme, _, key = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise Unauthorized("malformed Authorization header", detail="expected `Authorization: Bearer <key>`")
        digest = hash_key(key.strip())
        cached = self._cache.get(digest)
        if cached and cached[1] > time.monotonic():
            return cached[0]
        project = await run_in_threadpool(self.projects.project_for_key, key.strip())
        if project is None:
            raise Unauthorized(
                "unknown API key",
                detail="this key is not registered; create one with `conveyor keys create --project NAME`",
            )
        self._cache[digest] = (project, time.monotonic() + _CACHE_SECONDS)
        return project
