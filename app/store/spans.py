"""The repository behind the spans API: user spans with client-chosen ids, updates, deletes. A call's
own span rows are built from its result in app/services/call_spans.py."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from app.store.db import Database
from app.store.tables import Span


@dataclass(frozen=True)
class NewSpan:
    """A span created through the API; `trace_id` is already resolved (from the parent, or new)."""

    id: str
    project_id: str
    trace_id: str
    name: str
    parent_id: str | None = None
    type: str | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    input: Any = None
    output: Any = None
    error: str | None = None
    meta: dict[str, Any] | None = None
    score: int | None = None


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()


@dataclass(frozen=True)
class SpanPatch:
    """Changes to a span: a field left UNSET stays as it is, None clears it."""

    name: str = UNSET
    type: str | None = UNSET
    start_time: datetime | None = UNSET
    end_time: datetime | None = UNSET
    input: Any = UNSET
    output: Any = UNSET
    error: str | None = UNSET
    meta: dict[str, Any] | None = UNSET
    score: int | None = UNSET

    def assigned(self) -> Iterator[tuple[str, Any]]:
        for field in fields(self):
            value = getattr(self, field.name)
            if value is not UNSET:
                yield field.name, value


class SpanRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def trace_of(self, project_id: str, span_id: str) -> str | None:
        """The trace a span belongs to, or None when the project has no such span."""
        with self.db.transaction() as session:
            return session.scalar(select(Span.trace_id).where(Span.id == span_id, Span.project_id == project_id))

    def get(self, project_id: str, span_id: str) -> Span | None:
        with self.db.transaction() as session:
            return session.scalars(select(Span).where(Span.id == span_id, Span.project_id == project_id)).first()

    def children(self, project_id: str, parent_id: str) -> list[Span]:
        with self.db.transaction() as session:
            return list(
                session.scalars(
                    select(Span)
                    .where(Span.project_id == project_id, Span.parent_id == parent_id)
                    .order_by(Span.start_time)
                )
            )

    def insert(self, new: NewSpan) -> Span | None:
        """Store a span under its chosen id; None when that id is already taken (in any project)."""
        try:
            with self.db.transaction() as session:
                if session.get(Span, new.id) is not None:
                    return None
                span = Span(**{field.name: getattr(new, field.name) for field in fields(new)})
                session.add(span)
                session.flush()
                return span
        except IntegrityError:  # the same id inserted concurrently
            return None

    def update(self, project_id: str, span_id: str, patch: SpanPatch) -> Span | None:
        """Apply `patch`; the updated span, or None when the project has no such span."""
        with self.db.transaction() as session:
            span = session.scalars(
                select(Span).where(Span.id == span_id, Span.project_id == project_id).with_for_update()
            ).first()
            if span is None:
                return None
            for name, value in patch.assigned():
                setattr(span, name, value)
            session.flush()
            return span

    def delete(self, project_id: str, span_id: str) -> bool:
        """Delete a span (its metrics go with it); its children move up to its parent, so the trace
        keeps one connected tree. False when the project has no such span."""
        with self.db.transaction() as session:
            found = session.execute(
                select(Span.id, Span.parent_id).where(Span.id == span_id, Span.project_id == project_id)
            ).first()
            if found is None:
                return False
            parent_id = found.parent_id
            session.execute(
                update(Span)
                .where(Span.project_id == project_id, Span.parent_id == span_id)
                .values(parent_id=parent_id)
                .execution_options(synchronize_session=False)
            )
            session.execute(delete(Span).where(Span.id == span_id, Span.project_id == project_id))
            return True
