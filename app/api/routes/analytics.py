"""Usage analytics: `GET /analytics/usage` (docs/opper-v2-api.md §7)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from app.api.deps import CurrentProject, Usage
from app.schemas.analytics import UsageItem
from app.schemas.calls import ErrorBody
from app.schemas.spans import UTCTimestamp
from app.services.analytics import KNOWN_FIELDS, UsageRequest, usage_report
from app.store.analytics import Granularity

router = APIRouter(tags=["analytics"])


@router.get(
    "/analytics/usage",
    response_model=list[UsageItem],
    responses={code: {"model": ErrorBody} for code in (400, 401, 422)},
    summary="Usage and cost by time bucket",
)
def usage(
    project: CurrentProject,
    usage_rows: Usage,
    from_date: Annotated[UTCTimestamp | None, Query(description="Inclusive; default: this month's start (UTC)")] = None,
    to_date: Annotated[UTCTimestamp | None, Query(description="Exclusive; default: next month's start (UTC)")] = None,
    granularity: Annotated[
        str | None, Query(description=f"One of {', '.join(g.value for g in Granularity)}; default day")
    ] = None,
    fields: Annotated[list[str] | None, Query(description=f"Counters to sum: {', '.join(KNOWN_FIELDS)}")] = None,
    group_by: Annotated[list[str] | None, Query(description="Tag keys, or `model`")] = None,
) -> list[UsageItem]:
    """Computed from every model attempt (its tokens, cost and the call's tags), bucketed by the
    attempt's start in UTC. Only non-empty buckets are returned; naive datetimes are taken as UTC."""
    request = UsageRequest(from_date, to_date, granularity, tuple(fields or ()), tuple(group_by or ()))
    return usage_report(usage_rows, project.id, request)
