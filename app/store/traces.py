"""Traces: the spans of a project grouped by `trace_id`.

The rules, the same in SQL (listing) and in Python (one trace):
- a trace's root is its earliest span without a parent; its name is the trace's name;
- start is the earliest span start, end the latest span end;
- total tokens are summed over the `generation` spans (the per-attempt usage records; a call span
  repeats its attempts' sum, so counting both would count twice);
- the trace failed when a span other than a `generation` has an error: a failed attempt that a retry
  or a fallback model recovered from is not a failure of the trace, while an unrecovered one also
  marks its call span.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.sql.elements import ColumnElement

from app.store.db import Database
from app.store.tables import Span

GENERATION = "generation"


@dataclass(frozen=True)
class TraceStats:
    trace_id: str
    start_time: datetime | None
    end_time: datetime | None
    total_tokens: int
    failed: bool


@dataclass(frozen=True)
class TraceHead:
    """What a trace listing shows: the stats and the root span."""

    stats: TraceStats
    root: Span | None


def _counts_as_failure() -> ColumnElement[bool]:
    return and_(Span.error.is_not(None), or_(Span.type.is_(None), Span.type != GENERATION))


def stats_of(trace_id: str, spans: Sequence[Span]) -> TraceStats:
    """The stats of one trace from its spans (the Python twin of the listing's SQL)."""
    starts = [s.start_time for s in spans if s.start_time is not None]
    ends = [s.end_time for s in spans if s.end_time is not None]
    return TraceStats(
        trace_id=trace_id,
        start_time=min(starts, default=None),
        end_time=max(ends, default=None),
        total_tokens=sum(s.total_tokens or 0 for s in spans if s.type == GENERATION),
        failed=any(s.error is not None and s.type != GENERATION for s in spans),
    )


def root_of(spans: Sequence[Span]) -> Span | None:
    """The earliest span without a parent (spans come ordered by start); else the earliest span."""
    return next((s for s in spans if s.parent_id is None), spans[0] if spans else None)


class TraceRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def page(self, project_id: str, *, name: str | None, offset: int, limit: int) -> tuple[list[TraceHead], int]:
        """Traces newest first (by their roots' start), optionally only those whose root has `name`."""
        started = func.min(Span.start_time).label("started")
        roots = select(Span.trace_id, started).where(Span.project_id == project_id, Span.parent_id.is_(None))
        if name is not None:
            roots = roots.where(Span.name == name)
        roots = roots.group_by(Span.trace_id)
        with self.db.transaction() as session:
            # One grouping pass gives the page and (as a window over the groups) the total count.
            rows = session.execute(
                roots.add_columns(func.count().over().label("total"))
                .order_by(started.desc().nulls_last(), Span.trace_id)
                .offset(offset)
                .limit(limit)
            ).all()
            if not rows:  # past the end: the count needs its own query
                return [], session.scalar(select(func.count()).select_from(roots.subquery())) or 0
            ids, total = [row.trace_id for row in rows], rows[0].total
            stats = {row.trace_id: row for row in session.execute(self._stats_query(project_id, ids))}
            root_query = (
                select(Span)
                .where(Span.project_id == project_id, Span.trace_id.in_(ids), Span.parent_id.is_(None))
                .order_by(Span.start_time.nulls_last(), Span.id)
            )
            if name is not None:
                root_query = root_query.where(Span.name == name)
            root_by_trace: dict[str, Span] = {}
            for span in session.scalars(root_query):
                root_by_trace.setdefault(span.trace_id, span)
        heads = [
            TraceHead(
                TraceStats(
                    trace_id=trace_id,
                    start_time=stats[trace_id].start_time,
                    end_time=stats[trace_id].end_time,
                    total_tokens=int(stats[trace_id].total_tokens or 0),
                    failed=bool(stats[trace_id].failed),
                ),
                root_by_trace.get(trace_id),
            )
            for trace_id in ids
        ]
        return heads, total

    @staticmethod
    def _stats_query(project_id: str, trace_ids: list[str]):  # noqa: ANN205 - a Select
        return (
            select(
                Span.trace_id,
                func.min(Span.start_time).label("start_time"),
                func.max(Span.end_time).label("end_time"),
                func.sum(case((Span.type == GENERATION, Span.total_tokens), else_=0)).label("total_tokens"),
                func.max(case((_counts_as_failure(), 1), else_=0)).label("failed"),
            )
            .where(Span.project_id == project_id, Span.trace_id.in_(trace_ids))
            .group_by(Span.trace_id)
        )

    def spans(self, project_id: str, trace_id: str) -> list[Span]:
        """Every span of a trace, by start time; empty when the project has no such trace."""
        with self.db.transaction() as session:
            return list(
                session.scalars(
                    select(Span)
                    .where(Span.project_id == project_id, Span.trace_id == trace_id)
                    .order_by(Span.start_time.nulls_last(), Span.id)
                )
            )
