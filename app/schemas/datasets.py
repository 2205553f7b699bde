"""HTTP models of dataset entries, saved examples and span feedback (docs/opper-v2-api.md §5, §6).

Entry `input`/`output`/`expected` are accepted as any JSON but returned as strings, as the official
SDK requires: a stored string as it is, anything else as its JSON text with sorted keys (PostgreSQL's
JSONB does not keep key order, so sorting makes the text the same on every read and every backend).
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, Field

from app.store.datasets import EntryPatch, EntryRecord, NewEntry


def json_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)


def optional_json_text(value: Any) -> str | None:
    return None if value is None else json_text(value)


class EntryCreate(BaseModel):
    input: Any
    output: Any
    expected: Any = Field(None, description="The ideal output; few-shot prompts use it instead of `output`")
    comment: str | None = None

    def entry(self) -> NewEntry:
        return NewEntry(input=self.input, output=self.output, expected=self.expected, comment=self.comment)


class EntryUpdate(BaseModel):
    """Only the fields sent change; a field sent as null is cleared."""

    input: Any = None
    output: Any = None
    expected: Any = None
    comment: str | None = None

    def patch(self) -> EntryPatch:
        values = NewEntry(input=self.input, output=self.output, expected=self.expected, comment=self.comment)
        return EntryPatch(values=values, fields=frozenset(self.model_fields_set))


class EntryOut(BaseModel):
    id: str
    input: str
    output: str
    expected: str | None = None
    comment: str | None = None

    @classmethod
    def of(cls, record: EntryRecord) -> EntryOut:
        return cls(
            id=record.id,
            input=json_text(record.input),
            output=json_text(record.output),
            expected=optional_json_text(record.expected),
            comment=record.comment,
        )


class SaveExamplesOut(BaseModel):
    dataset_id: str
    dataset_entry_id: str
    input: str | None = None
    output: str | None = None
    expected: str | None = None
    comment: str | None = None

    @classmethod
    def of(cls, record: EntryRecord) -> SaveExamplesOut:
        return cls(
            dataset_id=record.dataset_id,
            dataset_entry_id=record.id,
            input=json_text(record.input),
            output=json_text(record.output),
            expected=optional_json_text(record.expected),
            comment=record.comment,
        )


class FeedbackIn(BaseModel):
    score: float = Field(description="0.0 (negative) to 1.0 (positive)")
    comment: str | None = None
    save_to_dataset: bool | None = Field(
        None,
        description="true: save the call to its function's dataset; false: never; null: save when the "
        "score is 1.0 and the function's `feedback.auto_save` configuration is on (the default)",
    )


class FeedbackOut(BaseModel):
    span_id: str
    score: float
    example_saved: bool
    comment: str | None = None
