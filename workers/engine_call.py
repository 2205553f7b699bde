"""A claimed job's engine call: few-shot examples from its function's dataset, then the task, streamed
to its channel when the caller streams; batch items at the rate limiter's low priority."""

from __future__ import annotations

from app.engine.executor import complete_task
from app.engine.results import CallResult
from app.engine.streaming import complete_streaming
from app.engine.task import task_from_dict
from app.services.fewshot import EmptyDatasetMemo, select_examples
from app.services.stream_messages import StreamChannel
from app.store.job_records import Claim
from workers.batch_dispatch import BATCH_MAX_RATE_WAIT, BATCH_PRIORITY
from workers.runtime import WorkerRuntime


async def engine_call(runtime: WorkerRuntime, claim: Claim, empty_datasets: EmptyDatasetMemo) -> CallResult:
    job = claim.job
    task = task_from_dict(job.task)
    deps = runtime.engine_deps
    # Few-shot examples from the function's dataset, closest to the input first (never fails the call).
    examples = await select_examples(runtime.db, job.project_id, job.function_id, task, empty=empty_datasets)
    if not job.stream:
        # Batch items yield to interactive calls at the limiter, and wait for it only so long.
        priority, max_wait = (BATCH_PRIORITY, BATCH_MAX_RATE_WAIT) if job.batch_id else (1, None)
        return await complete_task(
            task,
            deps,
            cache_scope=job.project_id,
            extra_examples=examples,
            priority=priority,
            max_rate_wait=max_wait,
        )
    # A second delivery of the job may follow output its first worker streamed: it says so first.
    return await complete_streaming(
        task,
        deps,
        cache_scope=job.project_id,
        sink=StreamChannel(runtime.async_redis, job.id),
        restarted=job.delivery_attempts > 1,
        extra_examples=examples,
    )
