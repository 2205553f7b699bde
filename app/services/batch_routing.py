"""Which way a batch runs: on the queue (the workers call the models), or through the provider's batch
API (half price, answered within 24 hours). See README "Provider batches"."""

from __future__ import annotations

from app.engine.task import TaskSpec
from app.errors import BadRequest
from app.providers.base import ModelResolver
from app.providers.batch_api import batch_api_of

_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
PROVIDER_WINDOW_SECONDS = 24 * 3600


def window_seconds(window: str | None) -> int | None:
    """`24h` → 86400; None for no window. (The schema has checked the shape.)"""
    if not window:
        return None
    return int(window[:-1]) * _UNIT_SECONDS[window[-1]]


def choose_execution(requested: str, completion_window: str | None, task: TaskSpec, resolver: ModelResolver) -> str:
    """ "queue" or "provider". `auto` picks provider when the window allows a day and the chain's first
    model has a batch API; an explicit `provider` without one is a 400 naming `execution`."""
    if requested == "queue":
        return "queue"
    has_api = bool(task.models) and batch_api_of(resolver.resolve(task.models[0].name)) is not None
    if requested == "provider":
        if not has_api:
            first = task.models[0].name if task.models else "(none)"
            raise BadRequest(
                f"the first model of the chain ({first}) has no provider batch API; use queue or auto",
                field_name="execution",
            )
        return "provider"
    window = window_seconds(completion_window)
    return "provider" if has_api and window is not None and window >= PROVIDER_WINDOW_SECONDS else "queue"
