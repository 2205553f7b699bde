"""What running batch items needs from the worker: their templates merged into their tasks at claim
time, and a call after each ends (for an early dispatcher round: the batch's next items, or its end,
at once when the worker has nothing else in flight)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from app.services.batch_items import TemplateCache
from app.store.job_records import Claim


@dataclass(frozen=True)
class BatchSupport:
    templates: TemplateCache
    item_ended: Callable[[bool], None]  # told whether the worker is now idle (its batch may be over)


def with_template(claim: Claim, batches: BatchSupport | None) -> Claim:
    """A batch item's claim with the full task (the batch's template with the item's own part), and the
    batch's trace context, which the item's spans link to (app/observability/worker_spans.py)."""
    if claim.job.batch_id is None:
        return claim
    template = batches.templates.get(claim.job.batch_id) if batches is not None else None
    if template is None:
        return claim  # the engine call fails on the incomplete task, and says so
    job = replace(claim.job, task={**template.task, **claim.job.task}, trace_context=template.trace_context)
    return replace(claim, job=job)
