"""app/store/rows.py: a NewRow writes what an INSERT of the mapped object would, and reads like it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.store.rows import NewRow, row_of
from app.store.tables import Span

SET = {"project_id": "p", "trace_id": "t", "name": "fake/a", "type": "generation", "input_tokens": 3, "meta": {"a": 1}}


def test_a_new_row_has_the_values_and_defaults_the_mapped_object_would_insert():
    built, mapped = NewRow(Span, **SET).values, row_of(Span(**SET))
    assert built.keys() == mapped.keys()
    assert built.pop("id") != mapped.pop("id")  # each gets a fresh id from the column's default
    assert built == mapped
    assert built["output_tokens"] == 0 and built["cost_generation"] == 0.0 and built["cached"] is None


def test_a_new_row_reads_like_the_mapped_object_and_refuses_unknown_names():
    at = datetime(2026, 1, 1, tzinfo=UTC)
    row = NewRow(Span, id="s1", start_time=at, **SET)
    assert (row.id, row.type, row.input_tokens, row.output_tokens, row.start_time) == ("s1", "generation", 3, 0, at)
    assert row.table is Span.__table__
    with pytest.raises(AttributeError, match="no attribute 'colour'"):
        _ = row.colour
    with pytest.raises(TypeError, match="no column for colour"):
        NewRow(Span, colour="red")
