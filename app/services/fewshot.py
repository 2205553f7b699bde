"""Few-shot examples from a function's dataset, and dataset search, by similarity to an input.

Ranking is BM25 over the entries' inputs (app/engine/fewshot.py); when an `Embedder` is passed it is
cosine similarity of embeddings instead, falling back to BM25 if the embedding call fails. Only the
newest `MAX_CANDIDATES` entries of a dataset are ranked, which bounds the work per call.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from app.engine.fewshot import Ranked, bm25_rank, cosine_rank, text_of
from app.engine.task import Example, TaskSpec
from app.store.datasets import DatasetRepository, EntryRecord
from app.store.db import Database

log = logging.getLogger("conveyor.fewshot")

MAX_CANDIDATES = 1000


class EmptyDatasetMemo:
    """Functions recently found to have no dataset entries. Most functions have none, and asking the
    database on every call of them cost a query and a thread hop per call (a tenth of a batch
    worker's CPU). An entry added to an empty dataset is used by calls at most `ttl_seconds` later.
    Used on one event loop: no lock."""

    def __init__(
        self, ttl_seconds: float = 5.0, max_size: int = 10_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl_seconds = ttl_seconds
        self.max_size = max_size
        self.clock = clock
        self._until: dict[tuple[str, str], float] = {}

    def known_empty(self, project_id: str, function_id: str) -> bool:
        key = (project_id, function_id)
        until = self._until.get(key)
        if until is None:
            return False
        if until <= self.clock():
            del self._until[key]
            return False
        return True

    def remember_empty(self, project_id: str, function_id: str) -> None:
        if len(self._until) >= self.max_size:
            self._until.pop(next(iter(self._until)))  # the oldest first
        self._until[(project_id, function_id)] = self.clock() + self.ttl_seconds


class Embedder(Protocol):
    """An embedding model: one vector per text, in order."""

    async def embed(self, texts: list[str]) -> list[list[float]]: ...


def _lexical(query: Any, entries: Sequence[EntryRecord]) -> list[Ranked]:
    return bm25_rank(query, [entry.input for entry in entries])


async def _rank(query: Any, entries: Sequence[EntryRecord], embedder: Embedder | None) -> list[Ranked]:
    if embedder is not None:
        try:
            vectors = await embedder.embed([text_of(query), *(text_of(entry.input) for entry in entries)])
            if len(vectors) == len(entries) + 1:
                return cosine_rank(vectors[0], vectors[1:])
            log.warning("the embedder gave %d vectors for %d texts; ranking lexically", len(vectors), len(entries) + 1)
        except Exception:
            log.warning("embedding failed; ranking lexically", exc_info=True)
    # BM25 is CPU work: keep it off the event loop that carries every in-flight call.
    return await asyncio.to_thread(_lexical, query, entries)


async def rank_entries(
    query: Any,
    entries: Sequence[EntryRecord],
    *,
    limit: int,
    embedder: Embedder | None = None,
    matches_only: bool = False,
) -> list[EntryRecord]:
    """The `limit` entries most similar to `query`, best first.

    `matches_only` drops lexical non-matches (entries sharing no term with the query); without it the
    ranking is filled up with the newest remaining entries, which still show the expected output format.
    """
    if not entries or limit <= 0:
        return []
    ranked = await _rank(query, entries, embedder)
    if matches_only and embedder is None:
        ranked = [r for r in ranked if r.score > 0]
    return [entries[r.index] for r in ranked[:limit]]


def as_example(entry: EntryRecord) -> Example:
    """An entry as a prompt example: `expected` is the ideal output when set, `output` otherwise."""
    output = entry.expected if entry.expected is not None else entry.output
    return Example(entry.input, output, entry.comment)


async def select_examples(
    db: Database,
    project_id: str,
    function_id: str | None,
    task: TaskSpec,
    *,
    embedder: Embedder | None = None,
    empty: EmptyDatasetMemo | None = None,
) -> tuple[Example, ...]:
    """`task.config.few_shot_count` examples from the function's dataset, closest to `task.input` first.

    Never fails a call: a dataset that cannot be read gives no examples (and a warning). `empty`
    spares the lookup for functions recently found without entries.
    """
    count = task.config.few_shot_count
    if count <= 0 or function_id is None:
        return ()
    if empty is not None and empty.known_empty(project_id, function_id):
        return ()
    repository = DatasetRepository(db)
    try:
        entries = await asyncio.to_thread(repository.function_entries, project_id, function_id, MAX_CANDIDATES)
        if not entries and empty is not None:
            empty.remember_empty(project_id, function_id)
        chosen = await rank_entries(task.input, entries, limit=count, embedder=embedder)
    except Exception:
        log.warning("few-shot selection failed; calling without dataset examples", exc_info=True)
        return ()
    return tuple(as_example(entry) for entry in chosen)


async def query_entries(
    repository: DatasetRepository,
    project_id: str,
    dataset_id: str,
    query: str,
    limit: int,
    *,
    embedder: Embedder | None = None,
) -> list[EntryRecord] | None:
    """Entries of a dataset matching the search text, best first; None when there is no such dataset."""
    entries = await asyncio.to_thread(repository.recent_entries, project_id, dataset_id, MAX_CANDIDATES)
    if entries is None:
        return None
    return await rank_entries(query, entries, limit=limit, embedder=embedder, matches_only=True)
