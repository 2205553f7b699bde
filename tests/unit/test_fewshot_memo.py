"""Functions found without dataset entries are not looked up again until the memo expires, and
calls of functions with entries are always looked up (their entries are never memoised)."""

from __future__ import annotations

import asyncio

from app.engine.task import TaskSpec
from app.services import fewshot
from app.services.fewshot import EmptyDatasetMemo, select_examples
from app.store.datasets import EntryRecord
from tests.unit.manual_clock import ManualClock


def test_the_memo_expires_and_drops_the_oldest_when_full():
    clock = ManualClock(100.0)
    memo = EmptyDatasetMemo(ttl_seconds=5, max_size=2, clock=clock)
    memo.remember_empty("p", "f1")
    assert memo.known_empty("p", "f1") and not memo.known_empty("q", "f1")
    clock.now += 5
    assert not memo.known_empty("p", "f1")
    memo.remember_empty("p", "a")
    memo.remember_empty("p", "b")
    memo.remember_empty("p", "c")
    assert not memo.known_empty("p", "a") and memo.known_empty("p", "b") and memo.known_empty("p", "c")


def test_select_examples_skips_the_lookup_of_a_function_known_empty(monkeypatch):
    lookups: list[str] = []
    stored: dict[str, list] = {"empty": [], "full": [entry()]}

    def function_entries(self, project_id, function_id, limit):  # noqa: ANN001
        lookups.append(function_id)
        return stored[function_id]

    monkeypatch.setattr(fewshot.DatasetRepository, "function_entries", function_entries)
    memo = EmptyDatasetMemo()
    task = TaskSpec(name="t", input="hello")

    async def calls() -> list[tuple]:
        return [await select_examples(None, "p", name, task, empty=memo) for name in ("empty", "full") * 2]

    chosen = asyncio.run(calls())
    assert lookups == ["empty", "full", "full"]  # the empty one once; the full one every time
    assert chosen[0] == chosen[2] == () and len(chosen[1]) == len(chosen[3]) == 1


def entry() -> EntryRecord:
    fields = {name: None for name in EntryRecord.__dataclass_fields__}
    return EntryRecord(**{**fields, "id": "e1", "input": "hello", "output": "hi", "comment": None})
