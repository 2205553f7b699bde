"""Each API process's copy of its projects' catalogs (model names, functions' current revisions).

Resolving a call reads what its model names mean (aliases, custom models) and which revision of its
function it runs: two or three queries per call when read each time. Here they are read once per
catalog version and kept; the job is then written only while that version still holds
(`JobRepository.create(..., catalog_version=...)`), so a change made through any API process (which
bumps the version in its own transaction) is seen by the very next call everywhere: the stale copy
makes the write fail, and the call is resolved again from a fresh one.

Touched only on the event loop; the reads run in the thread pool.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool

from app.store.catalog import CatalogReader, CatalogSnapshot

MAX_PROJECTS = 10_000
MAX_FUNCTIONS_PER_PROJECT = 10_000


class CatalogCache:
    def __init__(self, reader: CatalogReader) -> None:
        self.reader = reader
        self._snapshots: dict[str, CatalogSnapshot] = {}

    async def snapshot(self, project_id: str, function_name: str) -> CatalogSnapshot | None:
        """The project's catalog with `function_name`'s current revision (None: too large to cache)."""
        snapshot = self._snapshots.get(project_id)
        if snapshot is not None and function_name not in snapshot.functions:
            version, current = await run_in_threadpool(self.reader.function_at, project_id, function_name)
            if version == snapshot.version:
                if len(snapshot.functions) >= MAX_FUNCTIONS_PER_PROJECT:
                    snapshot.functions.clear()
                snapshot.functions[function_name] = current
                return snapshot
            snapshot = None  # the catalog changed since it was read: read it all again
        if snapshot is None:
            snapshot = await run_in_threadpool(self.reader.load, project_id, [function_name])
            if snapshot is None:
                return None
            if len(self._snapshots) >= MAX_PROJECTS:
                self._snapshots.clear()
            self._snapshots[project_id] = snapshot
        return snapshot

    def invalidate(self, project_id: str) -> None:
        """Forget a project's copy (a write failed on its version, or this process changed the catalog)."""
        self._snapshots.pop(project_id, None)
