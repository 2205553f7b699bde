"""A batch item deferred for lack of rate-limit room runs again later from a delayed message: both runs
are in the item's own trace (its Conveyor trace id), each linked to the span of the request that
submitted the batch, the first marked as deferred. The JobRunner runs in this process, with the
worker's tracer exporting to a real receiver."""

from __future__ import annotations

import json
import uuid

import pytest

from app.config import Settings
from app.engine.results import CallResult, Cost
from app.observability import tracing
from app.providers.base import Usage
from app.queue import BATCH_QUEUE, RUN_BATCH_ITEM, TaskQueue
from app.ratelimit import RateLimitWaitExceeded
from app.services.batch_intake import BatchIntake
from app.services.batch_items import TemplateCache
from app.store.batch_records import NewBatch, NewItem
from app.store.batches import BatchRepository
from app.store.projects import ProjectRepository
from app.store.tables import utcnow
from tests.tracing.traced import spans_by_kind
from tests.workers.in_process import in_process_runtime
from tests.workers.test_batch_runner import NoCancels, SentTasks
from workers import engine_call as engine_call_module
from workers.batch_support import BatchSupport
from workers.runner import JobRunner

SUBMITTED = ("ab" * 16, "cd" * 8)  # the batch request span's (trace id, span id)
TEMPLATE = {"name": "t", "instructions": "be brief", "models": [{"name": "fake/a"}], "config": {"few_shot_count": 0}}


@pytest.fixture
def traced_worker(http_receiver, monkeypatch):
    """This process's worker tracer, exporting to the receiver (the exporter reads the environment)."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", http_receiver.endpoint)
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
    tracing.start_worker()
    yield http_receiver
    tracing.stop_worker()


def test_a_deferred_batch_items_runs_are_one_trace_linked_to_its_batch(tmp_path, traced_worker, monkeypatch):
    answers: list = [RateLimitWaitExceeded("fake/a", "rpm", 5.0)]

    async def engine(task, deps, **kwargs):  # noqa: ANN001, ANN003
        if answers:
            raise answers.pop()
        now = utcnow()
        return CallResult("fake/a", "hi", None, Usage(3, 2), Cost(0.5), (), started_at=now, ended_at=now)

    monkeypatch.setattr(engine_call_module, "complete_task", engine)
    settings = Settings(_env_file=None, CONVEYOR_JOB_LEASE_SECONDS="30")
    with in_process_runtime(tmp_path, settings=settings, engine_deps=None, cancels=NoCancels()) as runtime:
        batches = BatchRepository(runtime.db)
        context = json.dumps({"traceparent": f"00-{SUBMITTED[0]}-{SUBMITTED[1]}-01"})
        new = NewBatch(ProjectRepository(runtime.db).ensure_project("p").id, TEMPLATE, trace_context=context)
        item = BatchIntake(batches).run(new, [NewItem("a", {"q": 1}, {})], skip_invalid=False).anchor_job_id
        sent = SentTasks()
        runner = JobRunner(
            runtime, queue=TaskQueue(sent), batches=BatchSupport(TemplateCache(batches), lambda _idle: None)
        )
        for _ in range(2):  # deferred, then run from its delayed message
            runtime.loop.run(tracing.traced_job(RUN_BATCH_ITEM, {}, (item,), runner.run_async(item)))
        trace_id = uuid.UUID(runtime.jobs.get(item).trace_id).hex

    assert sent.sent == [(RUN_BATCH_ITEM, [item], BATCH_QUEUE, 5.0)]
    runs = spans_by_kind(traced_worker, trace_id, consumer=2)["consumer"]
    deferred, answered = sorted(runs, key=lambda span: span.start_ns)
    for run in (deferred, answered):
        assert (run.name, run.parent_span_id, run.links) == (RUN_BATCH_ITEM, "", (SUBMITTED,))
        assert run.attributes["conveyor.job.id"] == item
    assert deferred.attributes["conveyor.job.deferred"] is True and "conveyor.job.status" not in deferred.attributes
    assert answered.attributes["conveyor.job.status"] == "succeeded"
    assert "conveyor.job.deferred" not in answered.attributes
