"""The engine's entry points: check a task's schemas and input, and complete a task.

Callers (the API before enqueueing, the worker when running a job) pass everything in: a resolved
`TaskSpec` and an `EngineDeps` (app/engine/deps.py). Nothing here knows about HTTP, queues or databases.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from app.engine.admission import CallAdmission
from app.engine.cache import ResultCache, cache_key
from app.engine.deps import EngineDeps
from app.engine.fallback import FallbackChain
from app.engine.observer import CacheHit
from app.engine.results import CallResult, Cost
from app.engine.structured import check_schema, validate_instance
from app.engine.task import Example, TaskSpec
from app.errors import BadRequest
from app.providers.base import Usage

if TYPE_CHECKING:
    from app.engine.streaming import AttemptListener

log = logging.getLogger(__name__)


def check_task_schemas(task: TaskSpec) -> None:
    """Raise BadRequest (field `input_schema` / `output_schema`) when a given schema is not valid."""
    if task.input_schema is not None:
        check_schema(task.input_schema, "input_schema")
    if task.output_schema is not None:
        check_schema(task.output_schema, "output_schema")


def validate_task_input(task: TaskSpec) -> None:
    """Raise BadRequest(field `input`) naming the failing path when the input breaks `input_schema`.

    Always validates when a schema is set; whether to call it (Opper's beta
    `input_validation` flag) is the caller's decision.
    """
    if task.input_schema is None:
        return
    errors = validate_instance(task.input, task.input_schema, schema_field="input_schema")
    if errors:
        raise BadRequest(f"does not match input_schema: {'; '.join(errors)}", field_name="input")


async def complete_task(
    task: TaskSpec,
    deps: EngineDeps,
    *,
    cache_scope: str,
    extra_examples: Sequence[Example] = (),
    priority: int = 1,
    max_rate_wait: float | None = None,
    listener: AttemptListener | None = None,
) -> CallResult:
    """Run `task` through its model chain, or serve it from the cache when `cache_ttl` > 0.

    A cache hit costs nothing and calls no provider (nor the rate limiter): it comes back with
    `cached=True`, zero usage and cost, and no attempts. Only successes are stored. The key covers
    the task, not the dataset few-shot `extra_examples`, so a hit can predate a dataset change
    (bounded by the TTL). With a `listener` (app/engine/streaming.py) each attempt is streamed from
    the provider and its deltas and failures are reported as they happen.

    Every provider request waits for a permit of `deps.rate_limiter`: `priority` orders this
    process's waiters (interactive 1, batch 0). Raises TaskFailed when every model fails, and
    `RateLimitWaitExceeded` when the call's first request finds no room within `max_rate_wait`
    seconds (None: wait as long as needed). Then no provider request was sent for this call, so
    nothing was spent: run it again later. (Later requests of a call that has begun are not bound by
    `max_rate_wait`, see app/engine/admission.py; were they, the attempts already paid for would be
    lost with the exception.)
    """
    ttl = task.config.cache_ttl
    cache = deps.cache if ttl > 0 else None
    key = cache_key(task) if cache is not None else ""
    if cache is not None:
        asked = deps.clock() if deps.observer is not None else None
        hit = await _cache_get(cache, cache_scope, key)
        if hit is not None:
            now = deps.clock()
            if deps.observer is not None and asked is not None:
                deps.observer.answered_from_cache(CacheHit(hit.model, asked, now))
            return replace(hit, cached=True, usage=Usage(), cost=Cost(), attempts=(), started_at=now, ended_at=now)
    admission = CallAdmission(deps.rate_limiter, priority=priority, max_wait=max_rate_wait)
    result = await FallbackChain(deps).run(task, extra_examples=extra_examples, listener=listener, admission=admission)
    if cache is not None:
        await _cache_set(cache, cache_scope, key, result, ttl)
    return result


# A cache outage must not fail calls that can be answered without it: log and carry on.


async def _cache_get(cache: ResultCache, scope: str, key: str) -> CallResult | None:
    try:
        return await cache.get(scope, key)
    except Exception:
        log.warning("result cache read failed; computing the result", exc_info=True)
        return None


async def _cache_set(cache: ResultCache, scope: str, key: str, result: CallResult, ttl: int) -> None:
    try:
        await cache.set(scope, key, result, ttl)
    except Exception:
        log.warning("result cache write failed; the result is returned uncached", exc_info=True)
