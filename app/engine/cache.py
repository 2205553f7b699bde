"""The result cache: a key per answer-changing task content, and a Redis store of successful results.

Only successful results are stored (the executor never passes an error here). Serialisation is
exact: reading back what was written gives an equal `CallResult`, datetimes included (ISO 8601).
"""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import datetime
from typing import Any, Protocol

from redis.asyncio import Redis

from app.engine.results import AttemptRecord, CallResult, Cost
from app.engine.structured import canonical_json
from app.engine.task import TaskSpec
from app.providers.base import Usage

log = logging.getLogger(__name__)

_FORMAT = 1  # bump when the stored JSON changes shape; older entries then read as misses
_KEY_VERSION = 1  # bump when the key's content changes, so old entries are no longer hit


def cache_key(task: TaskSpec) -> str:
    """sha256 of everything that changes the answer; dict key order does not matter.

    Tags and the rest of the configuration do not change the answer and are left out. Few-shot
    examples drawn from a dataset are not part of the task either (see `complete_task`).
    """
    content = {
        "v": _KEY_VERSION,
        "name": task.name,
        "instructions": task.instructions,
        "input_schema": task.input_schema,
        "output_schema": task.output_schema,
        "input": task.input,
        "examples": [{"input": e.input, "output": e.output, "comment": e.comment} for e in task.examples],
        "models": [{"name": m.name, "options": m.options, "extra_headers": m.extra_headers} for m in task.models],
        "max_attempts": task.config.max_attempts,
    }
    return hashlib.sha256(canonical_json(content).encode("utf-8")).hexdigest()


class ResultCache(Protocol):
    """Where successful results are kept; `scope` separates projects."""

    async def get(self, scope: str, key: str) -> CallResult | None: ...

    async def set(self, scope: str, key: str, result: CallResult, ttl: int) -> None: ...


class CacheKeyNames(Protocol):
    """How the cache's Redis keys are spelled (app/store/keys.py, passed in: the engine knows no store)."""

    def result_cache(self, scope: str, digest: str) -> str: ...


class RedisResultCache:
    """`ResultCache` on Redis: one JSON string per result, expiring after the task's TTL."""

    def __init__(self, redis: Redis, *, key_names: CacheKeyNames) -> None:
        self.redis = redis
        self.key_names = key_names

    async def get(self, scope: str, key: str) -> CallResult | None:
        raw = await self.redis.get(self.key_names.result_cache(scope, key))
        if raw is None:
            return None
        try:
            return call_result_from_json(raw.decode("utf-8") if isinstance(raw, bytes) else raw)
        except (ValueError, KeyError, TypeError) as err:  # an entry from another version: recompute
            log.warning("unreadable cache entry %s: %s", self.key_names.result_cache(scope, key), err)
            return None

    async def set(self, scope: str, key: str, result: CallResult, ttl: int) -> None:
        await self.redis.set(self.key_names.result_cache(scope, key), call_result_to_json(result), ex=max(1, int(ttl)))


# --- serialisation ------------------------------------------------------------------------------


def call_result_to_json(result: CallResult) -> str:
    return json.dumps(
        {
            "format": _FORMAT,
            "model": result.model,
            "message": result.message,
            "json_payload": result.json_payload,
            "usage": _usage_dict(result.usage),
            "cost": {"generation": result.cost.generation, "platform": result.cost.platform},
            "attempts": [_attempt_dict(a) for a in result.attempts],
            "cached": result.cached,
            "started_at": _iso(result.started_at),
            "ended_at": _iso(result.ended_at),
        },
        ensure_ascii=False,
    )


def call_result_from_json(text: str) -> CallResult:
    """Inverse of `call_result_to_json`; raises ValueError on another format version."""
    data = json.loads(text)
    if data.get("format") != _FORMAT:
        raise ValueError(f"cache format {data.get('format')!r}, expected {_FORMAT}")
    return CallResult(
        model=data["model"],
        message=data["message"],
        json_payload=data["json_payload"],
        usage=Usage(**data["usage"]),
        cost=Cost(**data["cost"]),
        attempts=tuple(_attempt_from(a) for a in data["attempts"]),
        cached=data["cached"],
        started_at=_from_iso(data["started_at"]),
        ended_at=_from_iso(data["ended_at"]),
    )


def _usage_dict(usage: Usage) -> dict[str, int]:
    return {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "reasoning_tokens": usage.reasoning_tokens,
    }


def _attempt_dict(a: AttemptRecord) -> dict[str, Any]:
    return {
        "model": a.model,
        "attempt": a.attempt,
        "started_at": _iso(a.started_at),
        "ended_at": _iso(a.ended_at),
        "usage": _usage_dict(a.usage),
        "cost": {"generation": a.cost.generation, "platform": a.cost.platform},
        "output_text": a.output_text,
        "error_type": a.error_type,
        "error_message": a.error_message,
    }


def _attempt_from(data: dict[str, Any]) -> AttemptRecord:
    return AttemptRecord(
        model=data["model"],
        attempt=data["attempt"],
        started_at=_from_iso(data["started_at"]),
        ended_at=_from_iso(data["ended_at"]),
        usage=Usage(**data["usage"]),
        cost=Cost(**data["cost"]),
        output_text=data["output_text"],
        error_type=data["error_type"],
        error_message=data["error_message"],
    )


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _from_iso(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value is not None else None
