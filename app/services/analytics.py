"""`GET /analytics/usage`: turn the query string into a `UsageQuery` (defaults, checks) and the buckets
into the wire items (cost as a string, summed fields and group values as extra keys)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from app.errors import BadRequest
from app.schemas.analytics import UsageItem
from app.store.analytics import SUMMABLE_COLUMNS, Granularity, UsageQuery, UsageRepository

# Opper's documented names for the same counters
FIELD_ALIASES = {"prompt_tokens": "input_tokens", "completion_tokens": "output_tokens"}
KNOWN_FIELDS = (*SUMMABLE_COLUMNS, *FIELD_ALIASES)
RESERVED_KEYS = ("time_bucket", "cost")
MAX_GROUP_KEY = 200


@dataclass(frozen=True)
class UsageRequest:
    """The query string as received (all optional)."""

    from_date: datetime | None = None
    to_date: datetime | None = None
    granularity: str | None = None
    fields: tuple[str, ...] = ()
    group_by: tuple[str, ...] = ()


def month_start(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def next_month_start(moment: datetime) -> datetime:
    start = month_start(moment)
    return start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def format_usd(amount: float) -> str:
    """A USD amount as a plain decimal string (no exponent), to 1e-10 of a dollar."""
    text = f"{amount:.10f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def _unique(values: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values))


def _check_fields(fields: tuple[str, ...]) -> None:
    for name in fields:
        if name not in KNOWN_FIELDS:
            raise BadRequest(f"unknown field {name!r}; known fields: {', '.join(KNOWN_FIELDS)}", field_name="fields")


def _check_group_by(group_by: tuple[str, ...], fields: tuple[str, ...]) -> None:
    for key in group_by:
        if not key or len(key) > MAX_GROUP_KEY:
            raise BadRequest(f"a key must have 1 to {MAX_GROUP_KEY} characters", field_name="group_by")
        if '"' in key or "\\" in key:
            raise BadRequest(f"{key!r}: a key may not contain quotes or backslashes", field_name="group_by")
        if key in RESERVED_KEYS or key in fields:
            raise BadRequest(f"{key!r} is already a key of every result item", field_name="group_by")


def usage_query(project_id: str, request: UsageRequest, *, now: datetime) -> UsageQuery:
    """Defaults: the current UTC month, by day. Raises BadRequest naming the offending parameter."""
    try:
        granularity = Granularity(request.granularity or Granularity.day)
    except ValueError:
        choices = ", ".join(g.value for g in Granularity)
        raise BadRequest(f"must be one of {choices}", field_name="granularity") from None
    fields, group_by = _unique(request.fields), _unique(request.group_by)
    _check_fields(fields)
    _check_group_by(group_by, fields)
    start = _utc(request.from_date) if request.from_date else month_start(now)
    end = _utc(request.to_date) if request.to_date else next_month_start(now)
    if end < start:
        raise BadRequest(
            f"{end.isoformat()} is before from_date {start.isoformat()} (from_date defaults to this month's start)",
            field_name="to_date",
        )
    columns = _unique(tuple(FIELD_ALIASES.get(name, name) for name in fields))
    return UsageQuery(project_id, start, end, granularity, columns, group_by)


def usage_report(repository: UsageRepository, project_id: str, request: UsageRequest) -> list[UsageItem]:
    query = usage_query(project_id, request, now=datetime.now(UTC))
    if query.start == query.end:
        return []
    fields = _unique(request.fields)
    return [
        UsageItem.model_validate(
            {
                "time_bucket": bucket.time_bucket,
                "cost": format_usd(bucket.cost),
                **bucket.groups,
                **{name: bucket.sums[FIELD_ALIASES.get(name, name)] for name in fields},
            }
        )
        for bucket in repository.buckets(query)
    ]
