"""What the API process builds once at start-up and shares across requests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import redis.asyncio as aioredis

from app.config import Settings
from app.providers.registry import ProviderRegistry
from app.queue import TaskQueue, broker_client
from app.services.batch_completion import BatchCompletion
from app.services.batches import BatchService
from app.services.calls import CallService
from app.services.catalog_cache import CatalogCache
from app.services.idempotency import IdempotencyGuard
from app.services.jobs import JobService
from app.services.model_catalog import ModelCatalog
from app.services.stream_hub import StreamHub
from app.services.streaming import StreamService
from app.services.waiter import JobWaiter
from app.services.webhook_delivery import WebhookDispatcher
from app.store.async_jobs import AsyncJobWriter
from app.store.batches import BatchRepository
from app.store.catalog import CatalogReader
from app.store.db import Database
from app.store.functions import FunctionRepository
from app.store.idempotency import IdempotencyRepository
from app.store.jobs import JobRepository
from app.store.projects import DEFAULT_PROJECT, ProjectRepository
from app.store.spans import SpanRepository
from app.store.webhooks import WebhookDeliveryRepository


@dataclass
class AppState:
    settings: Settings
    db: Database
    redis: aioredis.Redis
    queue: TaskQueue
    registry: ProviderRegistry
    projects: ProjectRepository
    functions: FunctionRepository
    jobs: JobRepository
    spans: SpanRepository
    waiter: JobWaiter
    calls: CallService
    stream_hub: StreamHub
    stream_service: StreamService
    job_service: JobService
    batch_service: BatchService

    @classmethod
    def build(cls, settings: Settings) -> AppState:
        db = Database(settings.database_url, pool_size=settings.db_pool_size)
        redis = aioredis.Redis.from_url(settings.redis_url)
        queue = TaskQueue(broker_client(settings))
        catalog = ModelCatalog.from_settings(db, settings)
        registry = ProviderRegistry(settings, custom_models=catalog.load_custom)
        functions, jobs, spans = FunctionRepository(db), JobRepository(db), SpanRepository(db)
        waiter = JobWaiter(redis, recheck_seconds=settings.wait_recheck_seconds)
        stale = timedelta(seconds=settings.idempotency_reservation_seconds)
        guard = IdempotencyGuard(IdempotencyRepository(db), jobs, stale_after=stale)
        writer = AsyncJobWriter(settings.database_url) if db.engine.dialect.name == "postgresql" else None
        cache = CatalogCache(CatalogReader(db))
        calls = CallService(settings, registry, functions, jobs, spans, redis, waiter, catalog, cache, writer)
        hub = StreamHub(redis)
        deliveries = WebhookDeliveryRepository(db)
        job_service = JobService(
            settings=settings,
            calls=calls,
            jobs=jobs,
            deliveries=deliveries,
            dispatcher=WebhookDispatcher(deliveries, queue),
            guard=guard,
            waiter=waiter,
            redis=redis,
        )
        batches = BatchRepository(db)
        batch_service = BatchService(
            settings=settings,
            calls=calls,
            batches=batches,
            jobs=jobs,
            guard=guard,
            completion=BatchCompletion(batches, WebhookDispatcher(deliveries, queue)),
            redis=redis,
        )
        return cls(
            settings=settings,
            db=db,
            redis=redis,
            queue=queue,
            registry=registry,
            projects=ProjectRepository(db),
            functions=functions,
            jobs=jobs,
            spans=spans,
            waiter=waiter,
            calls=calls,
            stream_hub=hub,
            stream_service=StreamService(settings, calls, jobs, hub),
            job_service=job_service,
            batch_service=batch_service,
        )

    def register_configured_keys(self) -> None:
        """Keys from CONVEYOR_API_KEYS belong to the `default` project."""
        keys = self.settings.api_key_list
        if keys:
            project = self.projects.ensure_project(DEFAULT_PROJECT)
            for key in keys:
                self.projects.add_key(project, key)

    async def start(self) -> None:
        """Background listeners on Redis (job announcements, stream messages); the async job writer."""
        if self.calls.job_writer is not None:
            await self.calls.job_writer.open()
        await self.waiter.start()
        await self.stream_hub.start()

    async def aclose(self) -> None:
        await self.stream_hub.stop()
        await self.waiter.stop()
        await self.redis.aclose()
        await self.registry.aclose()
        if self.calls.job_writer is not None:
            await self.calls.job_writer.close()
        self.db.dispose()
