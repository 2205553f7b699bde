"""The services the route handlers use, built once at start-up (handlers take them from app/api/deps.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import redis.asyncio as aioredis

from app.config import Settings
from app.providers.registry import ProviderRegistry
from app.queue import TaskQueue
from app.services.batch_completion import BatchCompletion
from app.services.batches import BatchService
from app.services.calls import CallService
from app.services.catalog_cache import CatalogCache
from app.services.datasets import DatasetService
from app.services.embeddings import EmbeddingService
from app.services.functions import FunctionService
from app.services.idempotency import IdempotencyGuard
from app.services.jobs import JobService
from app.services.model_catalog import ModelCatalog
from app.services.observability import SpanService
from app.services.stream_hub import StreamHub
from app.services.streaming import StreamService
from app.services.submission import CallSubmitter
from app.services.traces import TraceService
from app.services.waiter import JobWaiter
from app.services.webhook_delivery import WebhookDispatcher
from app.store.analytics import UsageRepository
from app.store.async_jobs import AsyncJobWriter
from app.store.batches import BatchRepository
from app.store.catalog import CatalogReader
from app.store.datasets import DatasetRepository
from app.store.db import Database
from app.store.feedback import FeedbackRepository
from app.store.functions import FunctionRepository
from app.store.idempotency import IdempotencyRepository
from app.store.job_spans import JobSpanRepository
from app.store.jobs import JobRepository
from app.store.metrics import MetricRepository
from app.store.spans import SpanRepository
from app.store.traces import TraceRepository
from app.store.webhooks import WebhookDeliveryRepository


@dataclass
class ApiServices:
    calls: CallService
    submitter: CallSubmitter  # every delivery mode's way to a queued job
    jobs: JobService
    streams: StreamService
    batches: BatchService
    functions: FunctionService
    datasets: DatasetService
    embeddings: EmbeddingService
    spans: SpanService
    traces: TraceService
    catalog: ModelCatalog
    usage: UsageRepository
    job_spans: JobSpanRepository

    @classmethod
    def build(
        cls,
        settings: Settings,
        db: Database,
        redis: aioredis.Redis,
        queue: TaskQueue,
        registry: ProviderRegistry,
        catalog: ModelCatalog,
        waiter: JobWaiter,
        hub: StreamHub,
    ) -> ApiServices:
        functions, jobs, spans = FunctionRepository(db), JobRepository(db), SpanRepository(db)
        writer = None
        if db.engine.dialect.name == "postgresql":  # half the pool size per commit mode, as the relaxed engine
            writer = AsyncJobWriter(settings.database_url, max_size=max(2, settings.db_pool_size // 2))
        stale = timedelta(seconds=settings.idempotency_reservation_seconds)
        guard = IdempotencyGuard(IdempotencyRepository(db), jobs, stale_after=stale)
        cache = CatalogCache(CatalogReader(db))
        submitter = CallSubmitter(settings, registry, functions, jobs, spans, redis, catalog, cache, writer)
        calls = CallService(settings, submitter, jobs, waiter, guard)
        deliveries = WebhookDeliveryRepository(db)
        dispatcher = WebhookDispatcher(deliveries, queue)
        batches = BatchRepository(db)
        metrics = MetricRepository(db)
        return cls(
            calls=calls,
            submitter=submitter,
            jobs=JobService(
                settings=settings,
                submitter=submitter,
                jobs=jobs,
                deliveries=deliveries,
                dispatcher=dispatcher,
                guard=guard,
                waiter=waiter,
                redis=redis,
            ),
            streams=StreamService(settings, submitter, jobs, hub),
            batches=BatchService(
                settings=settings,
                submitter=submitter,
                batches=batches,
                jobs=jobs,
                guard=guard,
                completion=BatchCompletion(batches, dispatcher),
                redis=redis,
            ),
            functions=FunctionService(functions, registry, settings.default_model, catalog),
            datasets=DatasetService(DatasetRepository(db), functions, spans, FeedbackRepository(db)),
            embeddings=EmbeddingService(registry, catalog, settings.embedding_model),
            spans=SpanService(db, spans, metrics),
            traces=TraceService(TraceRepository(db), metrics),
            catalog=catalog,
            usage=UsageRepository(db),
            job_spans=JobSpanRepository(db),
        )
