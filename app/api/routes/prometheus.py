"""`GET /metrics`: Prometheus' text format for the whole cluster (app/metrics/scrape.py), at the root
like the health probes, behind CONVEYOR_METRICS_TOKEN when it is set."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Response
from prometheus_client import CONTENT_TYPE_LATEST

from app.api.deps import State
from app.metrics.scrape import check_token, cluster_metrics
from app.schemas.calls import ErrorBody

router = APIRouter(tags=["prometheus"])

_TEXT = {"text/plain": {"schema": {"type": "string"}}}


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"description": "Prometheus text exposition format 0.0.4", "content": _TEXT},
        401: {"model": ErrorBody, "description": "CONVEYOR_METRICS_TOKEN is set and the bearer token is not it"},
    },
    summary="Prometheus metrics of the whole cluster",
)
async def metrics(
    state: State, authorization: Annotated[str | None, Header(include_in_schema=False)] = None
) -> Response:
    """Counters and histograms every API and worker process adds to, and gauges read now."""
    check_token(state.settings.metrics_token, authorization)
    return Response(await cluster_metrics(state.redis, state.db), media_type=CONTENT_TYPE_LATEST)
