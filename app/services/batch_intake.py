"""Accepting a batch's items: read them one at a time, check each, and write them in chunks.

At no point are all items in memory: lines are read from the upload's spool one by one, checked,
and inserted a chunk of `CHUNK_ROWS` at a time. What grows with the batch is the set of `custom_id`s
seen (for uniqueness) and nothing else.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from typing import IO, Any

from app.engine.structured import instance_validator, validate_instance
from app.errors import BadRequest
from app.json_values import UnstorableValue, loads
from app.store.batch_records import NewBatch, NewItem
from app.store.batches import BatchRepository

MAX_LINE_BYTES = 1024 * 1024
MAX_LISTED_INVALID = 100
CHUNK_ROWS = 2000
ITEM_FIELDS = ("custom_id", "input", "tags")


@dataclass(frozen=True)
class InvalidItem:
    line: int
    custom_id: str | None
    reason: str


class ItemError(Exception):
    def __init__(self, reason: str, custom_id: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.custom_id = custom_id


def jsonl_values(file: IO[bytes]) -> Iterator[tuple[int, Any]]:
    """(1-based line number, parsed value or ItemError) for each non-blank line."""
    number = 0
    while raw := file.readline(MAX_LINE_BYTES + 1):
        number += 1
        if len(raw) > MAX_LINE_BYTES:
            while raw and not raw.endswith(b"\n"):  # skip the rest of the long line
                raw = file.readline(MAX_LINE_BYTES)
            yield number, ItemError(f"the line is longer than {MAX_LINE_BYTES} bytes")
            continue
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):  # a UTF-8 byte order mark
            raw = raw[3:]
        if not raw.strip():
            continue
        try:
            yield number, loads(raw)
        except UnstorableValue as exc:  # a NUL, lone surrogate, NaN or Infinity: no store can keep it
            yield number, ItemError(str(exc))
        except ValueError as exc:
            yield number, ItemError(f"not valid JSON: {exc}")


def listed_values(items: Iterable[Any]) -> Iterator[tuple[int, Any]]:
    """The `items` of a JSON body, numbered from 1 like lines."""
    return enumerate(items, start=1)


class ItemChecker:
    """Checks items against the batch's task: shape, unique `custom_id`, input against the input schema."""

    def __init__(self, input_schema: dict[str, Any] | None, base_tags: dict[str, str]) -> None:
        self.input_schema = input_schema
        self.base_tags = base_tags
        self.first_line: dict[str, int] = {}
        self.validator = None
        if input_schema is not None:  # compiled once; the engine's validate_instance words the failures
            self.validator = instance_validator(input_schema)

    def check(self, line: int, value: Any) -> NewItem:
        if isinstance(value, ItemError):
            raise value
        if not isinstance(value, dict):
            raise ItemError("must be a JSON object with custom_id and input")
        custom_id = value.get("custom_id")
        if not isinstance(custom_id, str) or not 1 <= len(custom_id) <= 255:
            raise ItemError("custom_id: must be a string of 1 to 255 characters")
        first = self.first_line.setdefault(custom_id, line)
        if first != line:
            raise ItemError(f"custom_id: {custom_id!r} was already used on line {first}", custom_id)
        unknown = sorted(set(value) - set(ITEM_FIELDS))
        if unknown:
            raise ItemError(f"{unknown[0]}: unknown field; an item has {', '.join(ITEM_FIELDS)}", custom_id)
        if "input" not in value:
            raise ItemError("input: is required", custom_id)
        tags = value.get("tags") or {}
        if not isinstance(tags, dict) or not all(isinstance(v, str) for v in tags.values()):
            raise ItemError("tags: must be an object of strings", custom_id)
        if self.validator is not None and not self.validator.is_valid(value["input"]):
            errors = validate_instance(value["input"], self.input_schema, schema_field="input_schema")
            if errors:
                raise ItemError(f"input: does not match input_schema: {'; '.join(errors[:3])}", custom_id)
        return NewItem(custom_id, value["input"], {**self.base_tags, **tags})

    def checked(self, values: Iterable[tuple[int, Any]]) -> Iterator[NewItem | InvalidItem]:
        for line, value in values:
            try:
                yield self.check(line, value)
            except ItemError as exc:
                yield InvalidItem(line, exc.custom_id, exc.reason)


@dataclass(frozen=True)
class IntakeResult:
    batch_id: str
    anchor_job_id: str
    accepted: int
    invalid: tuple[InvalidItem, ...]  # the first MAX_LISTED_INVALID
    invalid_count: int


class BatchIntake:
    def __init__(self, batches: BatchRepository, *, chunk_rows: int = CHUNK_ROWS) -> None:
        self.batches = batches
        self.chunk_rows = chunk_rows

    def run(
        self,
        new: NewBatch,
        items: Iterable[NewItem | InvalidItem],
        *,
        skip_invalid: bool,
    ) -> IntakeResult:
        """Write the batch and its valid items, then let it run. With `skip_invalid` False, one invalid
        item refuses the batch (BadRequest listing the invalid items; nothing is kept)."""
        batch_id = self.batches.create(new)
        try:
            result = self._write(batch_id, new, items, skip_invalid)
        except BaseException:
            self.batches.discard(batch_id)
            raise
        listed = [asdict(item) for item in result.invalid]
        self.batches.activate(batch_id, total=result.accepted, invalid=listed, invalid_count=result.invalid_count)
        return result

    def _write(
        self,
        batch_id: str,
        new: NewBatch,
        items: Iterable[NewItem | InvalidItem],
        skip_invalid: bool,
    ) -> IntakeResult:
        def write(chunk: list[NewItem], first_seq: int) -> str | None:
            return self.batches.add_items(batch_id, new, chunk, first_seq=first_seq)

        writer = ChunkWriter(write)
        try:
            accepted, invalid, invalid_count = self._read(items, writer, skip_invalid)
        finally:
            anchor = writer.close()
        if invalid_count and not skip_invalid:
            raise _refused(f"{invalid_count} invalid item(s); nothing was accepted", invalid, invalid_count)
        if accepted == 0:
            raise _refused("the batch has no valid items", invalid, invalid_count)
        return IntakeResult(batch_id, anchor or "", accepted, tuple(invalid), invalid_count)

    def _read(
        self, items: Iterable[NewItem | InvalidItem], writer: ChunkWriter, skip_invalid: bool
    ) -> tuple[int, list[InvalidItem], int]:
        chunk: list[NewItem] = []
        invalid: list[InvalidItem] = []
        invalid_count = accepted = 0
        for item in items:
            if isinstance(item, InvalidItem):
                invalid_count += 1
                if len(invalid) < MAX_LISTED_INVALID:
                    invalid.append(item)
                continue
            if invalid_count and not skip_invalid:
                continue  # refused anyway: only keep reading for the report
            chunk.append(item)
            if len(chunk) >= self.chunk_rows:
                writer.put(chunk, accepted + 1)
                accepted += len(chunk)
                chunk = []
        if chunk and not (invalid_count and not skip_invalid):
            writer.put(chunk, accepted + 1)
            accepted += len(chunk)
        return accepted, invalid, invalid_count


class ChunkWriter:
    """Writes chunks on a thread of its own while the next chunk is read and checked, so the database
    round trips overlap the parsing. At most two chunks wait: memory stays bounded."""

    def __init__(self, write: Callable[[list[NewItem], int], str | None]) -> None:
        self.write = write
        self.pending: queue.Queue[tuple[list[NewItem], int] | None] = queue.Queue(maxsize=2)
        self.first_id: str | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="batch-intake-writer", daemon=True)
        self.thread.start()

    def put(self, chunk: list[NewItem], first_seq: int) -> None:
        if self.error is not None:
            raise self.error
        self.pending.put((chunk, first_seq))

    def close(self) -> str | None:
        """Wait for the writes; the id of the first item written. Raises what a write raised."""
        self.pending.put(None)
        self.thread.join()
        if self.error is not None:
            raise self.error
        return self.first_id

    def _run(self) -> None:
        while (work := self.pending.get()) is not None:
            if self.error is not None:
                continue  # a write failed: drain, so the reader is never blocked
            try:
                written = self.write(*work)
                self.first_id = self.first_id or written
            except BaseException as exc:
                self.error = exc


def _refused(reason: str, invalid: list[InvalidItem], invalid_count: int) -> BadRequest:
    return BadRequest(
        reason,
        detail={"reason": reason, "invalid_items": [asdict(item) for item in invalid], "invalid_count": invalid_count},
    )
