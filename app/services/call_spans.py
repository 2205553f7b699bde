"""A call's span rows (`NewRow`s of the spans table), built from the engine's result: the call span and
one child `generation` span per model attempt, each with its usage and cost. The store keeps rows and
knows no engine results; this is where the two meet (the worker's ending and the provider-batch
driver write these rows)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from app.engine.results import AttemptRecord, CallResult, Cost
from app.providers.base import Usage
from app.store.jobs import JobRecord
from app.store.rows import NewRow
from app.store.tables import Span, utcnow


def _usage_columns(usage: Usage, cost: Cost) -> dict[str, Any]:
    return {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "reasoning_tokens": usage.reasoning_tokens,
        "total_tokens": usage.total_tokens,
        "cost_generation": cost.generation,
        "cost_platform": cost.platform,
    }


def attempt_spans(job: JobRecord, attempts: Sequence[AttemptRecord]) -> list[NewRow]:
    return [
        NewRow(
            Span,
            project_id=job.project_id,
            trace_id=job.trace_id,
            parent_id=job.span_id,
            job_id=job.id,
            function_id=job.function_id,
            revision_id=job.revision_id,
            name=attempt.model,
            type="generation",
            output=attempt.output_text,
            error=None if attempt.succeeded else f"{attempt.error_type}: {attempt.error_message}",
            meta={"attempt": attempt.attempt},
            tags=job.task.get("tags") or None,
            model=attempt.model,
            start_time=attempt.started_at,
            end_time=attempt.ended_at,
            **_usage_columns(attempt.usage, attempt.cost),
        )
        for attempt in attempts
    ]


def call_span(
    job: JobRecord,
    *,
    started_at: datetime | None,
    output: Any = None,
    model: str | None = None,
    usage: Usage = Usage(),
    cost: Cost = Cost(),
    cached: bool | None = None,
    error: str | None = None,
    attempts: int = 0,
) -> NewRow:
    return NewRow(
        Span,
        id=job.span_id,
        project_id=job.project_id,
        trace_id=job.trace_id,
        parent_id=job.parent_span_id,
        job_id=job.id,
        function_id=job.function_id,
        revision_id=job.revision_id,
        name=job.task["name"],
        type="call",
        input=job.task.get("input"),
        output=output,
        error=error,
        meta={"job_id": job.id, "attempts": attempts, "instructions": job.task.get("instructions")},
        tags=job.task.get("tags") or None,
        model=model,
        cached=cached,
        start_time=started_at or job.started_at or job.created_at,
        end_time=utcnow(),
        **_usage_columns(usage, cost),
    )


def spans_for_success(job: JobRecord, result: CallResult) -> list[NewRow]:
    output = result.json_payload if result.message is None else result.message
    root = call_span(
        job,
        started_at=result.started_at,
        output=output,
        model=result.model,
        usage=result.usage,
        cost=result.cost,
        cached=result.cached,
        attempts=len(result.attempts),
    )
    return [root, *attempt_spans(job, result.attempts)]


def spans_for_failure(
    job: JobRecord, error: str, attempts: Sequence[AttemptRecord], started_at: datetime | None
) -> list[NewRow]:
    usage = sum((a.usage for a in attempts), Usage())
    cost = sum((a.cost for a in attempts), Cost())
    root = call_span(job, started_at=started_at, usage=usage, cost=cost, error=error, attempts=len(attempts))
    return [root, *attempt_spans(job, attempts)]
