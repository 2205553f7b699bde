"""What the API process builds once at start-up and shares across requests."""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis

from app.api.services import ApiServices
from app.config import Settings
from app.providers.registry import ProviderRegistry
from app.queue import TaskQueue, broker_client
from app.services.model_catalog import ModelCatalog
from app.services.stream_hub import StreamHub
from app.services.waiter import JobWaiter
from app.store.db import Database
from app.store.projects import DEFAULT_PROJECT, ProjectRepository


@dataclass
class AppState:
    settings: Settings
    db: Database
    redis: aioredis.Redis
    registry: ProviderRegistry
    projects: ProjectRepository
    waiter: JobWaiter
    stream_hub: StreamHub
    services: ApiServices

    @classmethod
    def build(cls, settings: Settings) -> AppState:
        db = Database(settings.database_url, pool_size=settings.db_pool_size)
        redis = aioredis.Redis.from_url(settings.redis_url)
        queue = TaskQueue(broker_client(settings))
        catalog = ModelCatalog.from_settings(db, settings)
        registry = ProviderRegistry(settings, custom_models=catalog.load_custom)
        waiter = JobWaiter(redis, recheck_seconds=settings.wait_recheck_seconds)
        hub = StreamHub(redis)
        return cls(
            settings=settings,
            db=db,
            redis=redis,
            registry=registry,
            projects=ProjectRepository(db),
            waiter=waiter,
            stream_hub=hub,
            services=ApiServices.build(settings, db, redis, queue, registry, catalog, waiter, hub),
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
        if self.services.submitter.job_writer is not None:
            await self.services.submitter.job_writer.open()
        await self.waiter.start()
        await self.stream_hub.start()

    async def aclose(self) -> None:
        await self.stream_hub.stop()
        await self.waiter.stop()
        await self.redis.aclose()
        await self.registry.aclose()
        if self.services.submitter.job_writer is not None:
            await self.services.submitter.job_writer.close()
        self.db.dispose()
