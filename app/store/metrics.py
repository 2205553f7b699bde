"""Span metrics: named values attached to a span, one per dimension, always read through the span's project."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.errors import Conflict, NotFound
from app.store.db import Database
from app.store.spans import UNSET
from app.store.tables import Span
from app.store.tables_observability import SpanMetric


@dataclass(frozen=True)
class NewMetric:
    project_id: str
    span_id: str
    dimension: str
    value: float
    comment: str | None = None


@dataclass(frozen=True)
class MetricPatch:
    """Changes to a metric: a field left UNSET stays as it is."""

    dimension: str = UNSET
    value: float = UNSET
    comment: str | None = UNSET

    def assigned(self) -> Iterator[tuple[str, Any]]:
        for field in fields(self):
            value = getattr(self, field.name)
            if value is not UNSET:
                yield field.name, value


def _dimension_taken(dimension: str) -> Conflict:
    return Conflict(
        f"the span already has a metric with dimension {dimension!r}",
        detail=f"dimension: the span already has a metric {dimension!r}; update that one instead",
    )


def _span_not_found(span_id: str) -> NotFound:
    return NotFound("span not found", detail=f"span_id: no span {span_id} in this project")


class MetricRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    @staticmethod
    def _require_span(session: Session, project_id: str, span_id: str) -> None:
        if session.scalar(select(Span.id).where(Span.id == span_id, Span.project_id == project_id)) is None:
            raise _span_not_found(span_id)

    @staticmethod
    def _taken(session: Session, span_id: str, dimension: str, *, other_than: str | None = None) -> bool:
        query = select(SpanMetric.id).where(SpanMetric.span_id == span_id, SpanMetric.dimension == dimension)
        if other_than is not None:
            query = query.where(SpanMetric.id != other_than)
        return session.scalar(query) is not None

    def create(self, new: NewMetric) -> SpanMetric:
        """Raises NotFound for another project's span, Conflict when the dimension is taken."""
        try:
            with self.db.transaction() as session:
                self._require_span(session, new.project_id, new.span_id)
                if self._taken(session, new.span_id, new.dimension):
                    raise _dimension_taken(new.dimension)
                metric = SpanMetric(**{field.name: getattr(new, field.name) for field in fields(new)})
                session.add(metric)
                session.flush()
                return metric
        except IntegrityError:  # the same dimension created concurrently
            raise _dimension_taken(new.dimension) from None

    def page(self, project_id: str, span_id: str, *, offset: int, limit: int) -> tuple[Sequence[SpanMetric], int]:
        """One page of a span's metrics, oldest first, and their total count."""
        with self.db.transaction() as session:
            self._require_span(session, project_id, span_id)
            where = (SpanMetric.span_id == span_id, SpanMetric.project_id == project_id)
            total = session.scalar(select(func.count()).select_from(SpanMetric).where(*where)) or 0
            page = session.scalars(
                select(SpanMetric)
                .where(*where)
                .order_by(SpanMetric.created_at, SpanMetric.id)
                .offset(offset)
                .limit(limit)
            ).all()
            return page, total

    def for_trace(self, project_id: str, trace_id: str) -> list[SpanMetric]:
        """Every metric of every span of a trace, oldest first."""
        spans = select(Span.id).where(Span.project_id == project_id, Span.trace_id == trace_id)
        with self.db.transaction() as session:
            return list(
                session.scalars(
                    select(SpanMetric)
                    .where(SpanMetric.project_id == project_id, SpanMetric.span_id.in_(spans))
                    .order_by(SpanMetric.created_at, SpanMetric.id)
                )
            )

    def get(self, project_id: str, span_id: str, metric_id: str) -> SpanMetric | None:
        with self.db.transaction() as session:
            return session.scalars(self._one(project_id, span_id, metric_id)).first()

    def update(self, project_id: str, span_id: str, metric_id: str, patch: MetricPatch) -> SpanMetric | None:
        """The updated metric, None when there is no such metric; Conflict when renaming onto a taken dimension."""
        try:
            with self.db.transaction() as session:
                metric = session.scalars(self._one(project_id, span_id, metric_id).with_for_update()).first()
                if metric is None:
                    return None
                if patch.dimension is not UNSET and self._taken(
                    session, span_id, patch.dimension, other_than=metric_id
                ):
                    raise _dimension_taken(patch.dimension)
                for name, value in patch.assigned():
                    setattr(metric, name, value)
                session.flush()
                return metric
        except IntegrityError:
            raise _dimension_taken(str(patch.dimension)) from None

    def delete(self, project_id: str, span_id: str, metric_id: str) -> bool:
        with self.db.transaction() as session:
            metric = session.scalars(self._one(project_id, span_id, metric_id)).first()
            if metric is None:
                return False
            session.delete(metric)
            return True

    @staticmethod
    def _one(project_id: str, span_id: str, metric_id: str):  # noqa: ANN205 - a Select
        return select(SpanMetric).where(
            SpanMetric.id == metric_id, SpanMetric.span_id == span_id, SpanMetric.project_id == project_id
        )
