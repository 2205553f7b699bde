"""Usage analytics: the per-attempt `generation` spans of a project summed into UTC time buckets.

The database does the grouping (one row per bucket and group, however many spans): the bucket start
is `date_trunc` on PostgreSQL and `strftime` on SQLite, both on the UTC timestamp, so a span at
23:59:59.999 and one at 00:00:00 land in different days on either backend.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import DateTime, String, func, literal_column, select
from sqlalchemy.sql.elements import ColumnElement

from app.store.db import Database
from app.store.tables import Span

GENERATION = "generation"


class Granularity(enum.StrEnum):
    minute = "minute"
    hour = "hour"
    day = "day"
    month = "month"
    year = "year"


# summable field -> spans column
SUMMABLE_COLUMNS = {
    "input_tokens": Span.input_tokens,
    "output_tokens": Span.output_tokens,
    "reasoning_tokens": Span.reasoning_tokens,
    "total_tokens": Span.total_tokens,
}
MODEL_GROUP = "model"  # grouped by the spans' model column; every other key is a tag

_SQLITE_BUCKET_FORMATS = {
    Granularity.minute: "%Y-%m-%d %H:%M:00",
    Granularity.hour: "%Y-%m-%d %H:00:00",
    Granularity.day: "%Y-%m-%d 00:00:00",
    Granularity.month: "%Y-%m-01 00:00:00",
    Granularity.year: "%Y-01-01 00:00:00",
}


@dataclass(frozen=True)
class UsageQuery:
    project_id: str
    start: datetime  # inclusive
    end: datetime  # exclusive
    granularity: Granularity = Granularity.day
    columns: tuple[str, ...] = ()  # keys of SUMMABLE_COLUMNS, in the order wanted
    group_by: tuple[str, ...] = ()  # MODEL_GROUP or tag keys


@dataclass(frozen=True)
class UsageBucket:
    time_bucket: datetime
    cost: float  # USD, generation + platform
    sums: dict[str, int] = field(default_factory=dict)  # column -> sum
    groups: dict[str, str | None] = field(default_factory=dict)  # group key -> value (None: tag absent)


def bucket_start(dialect: str, granularity: Granularity) -> ColumnElement:
    """SQL for the start of the UTC bucket holding a span's `start_time`."""
    if dialect == "postgresql":
        utc_wall_time = func.timezone(literal_column("'UTC'"), Span.start_time)
        return func.date_trunc(literal_column(f"'{granularity.value}'"), utc_wall_time, type_=DateTime())
    if dialect == "sqlite":  # stored as 'YYYY-MM-DD HH:MM:SS.ffffff' in UTC
        return func.strftime(_SQLITE_BUCKET_FORMATS[granularity], Span.start_time, type_=String())
    raise NotImplementedError(f"usage analytics on {dialect}")


def _as_utc(value: datetime | str) -> datetime:
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _group_column(key: str) -> ColumnElement:
    return Span.model if key == MODEL_GROUP else Span.tags[key].as_string()


class UsageRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def buckets(self, query: UsageQuery) -> list[UsageBucket]:
        """Non-empty buckets in time order (then by group values)."""
        dialect = self.db.engine.dialect.name
        groups = [_group_column(key).label(f"g{i}") for i, key in enumerate(query.group_by)]
        sums = [
            func.coalesce(func.sum(SUMMABLE_COLUMNS[column]), 0).label(f"s{i}")
            for i, column in enumerate(query.columns)
        ]
        cost = func.coalesce(func.sum(Span.cost_generation + Span.cost_platform), 0.0).label("cost")
        # Grouped by output position: the same expression written twice would carry two bound
        # parameters (the tag key), which PostgreSQL does not recognise as the same expression.
        positions = [literal_column(str(i)) for i in range(1, len(groups) + 2)]
        statement = (
            select(bucket_start(dialect, query.granularity).label("bucket"), *groups, cost, *sums)
            .where(
                Span.project_id == query.project_id,
                Span.type == GENERATION,
                Span.start_time >= query.start,
                Span.start_time < query.end,
            )
            .group_by(*positions)
            .order_by(*positions)
        )
        with self.db.transaction() as session:
            rows = session.execute(statement).all()
        return [
            UsageBucket(
                time_bucket=_as_utc(row.bucket),
                cost=float(row.cost or 0.0),
                sums={column: int(getattr(row, f"s{i}") or 0) for i, column in enumerate(query.columns)},
                groups={key: getattr(row, f"g{i}") for i, key in enumerate(query.group_by)},
            )
            for row in rows
        ]
