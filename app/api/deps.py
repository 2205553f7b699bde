"""Annotated dependency aliases used by the route handlers: the caller's project, and each service,
built once at start-up (app/api/services.py), never per request."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Header, Request

from app.api.state import AppState
from app.services.batches import BatchService
from app.services.calls import CallService
from app.services.datasets import DatasetService
from app.services.embeddings import EmbeddingService
from app.services.functions import FunctionService
from app.services.jobs import JobService
from app.services.model_catalog import ModelCatalog
from app.services.observability import SpanService
from app.services.streaming import StreamService
from app.services.traces import TraceService
from app.store.analytics import UsageRepository
from app.store.job_spans import JobSpanRepository
from app.store.projects import ProjectRef


async def get_state(request: Request) -> AppState:
    # async: FastAPI runs a plain `def` dependency on its thread pool, a hop per request for a getter.
    return request.app.state.conveyor


async def get_project(
    request: Request, authorization: Annotated[str | None, Header(include_in_schema=False)] = None
) -> ProjectRef:
    return await request.app.state.authenticator.authenticate(authorization)


def _service(name: str) -> Any:
    """A dependency on one of the state's services (async, like `get_state`)."""

    async def service(request: Request) -> Any:
        return getattr(request.app.state.conveyor.services, name)

    service.__name__ = f"get_{name}"
    return Depends(service)


State = Annotated[AppState, Depends(get_state)]
CurrentProject = Annotated[ProjectRef, Depends(get_project)]
Calls = Annotated[CallService, _service("calls")]
Jobs = Annotated[JobService, _service("jobs")]
Streams = Annotated[StreamService, _service("streams")]
Batches = Annotated[BatchService, _service("batches")]
Functions = Annotated[FunctionService, _service("functions")]
Datasets = Annotated[DatasetService, _service("datasets")]
Embeddings = Annotated[EmbeddingService, _service("embeddings")]
Spans = Annotated[SpanService, _service("spans")]
Traces = Annotated[TraceService, _service("traces")]
Catalog = Annotated[ModelCatalog, _service("catalog")]
Usage = Annotated[UsageRepository, _service("usage")]
JobSpans = Annotated[JobSpanRepository, _service("job_spans")]
