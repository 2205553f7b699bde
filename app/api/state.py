"""What the API process builds once at start-up and shares across requests."""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis
from celery import Celery

from app.config import Settings
from app.providers.registry import ProviderRegistry
from app.services.calls import CallService
from app.services.waiter import JobWaiter
from app.store.db import Database
from app.store.functions import FunctionRepository
from app.store.jobs import JobRepository
from app.store.projects import DEFAULT_PROJECT, ProjectRepository
from app.store.spans import SpanRepository
from workers.celery_app import make_celery


@dataclass
class AppState:
    settings: Settings
    db: Database
    redis: aioredis.Redis
    celery: Celery
    registry: ProviderRegistry
    projects: ProjectRepository
    functions: FunctionRepository
    jobs: JobRepository
    spans: SpanRepository
    waiter: JobWaiter
    calls: CallService

    @classmethod
    def build(cls, settings: Settings) -> AppState:
        db = Database(settings.database_url, pool_size=settings.db_pool_size)
        redis = aioredis.Redis.from_url(settings.redis_url)
        celery = make_celery(settings)
        registry = ProviderRegistry(settings)
        functions, jobs, spans = FunctionRepository(db), JobRepository(db), SpanRepository(db)
        waiter = JobWaiter(redis)
        return cls(
            settings=settings,
            db=db,
            redis=redis,
            celery=celery,
            registry=registry,
            projects=ProjectRepository(db),
            functions=functions,
            jobs=jobs,
            spans=spans,
            waiter=waiter,
            calls=CallService(settings, registry, functions, jobs, spans, celery, waiter),
        )

    def register_configured_keys(self) -> None:
        """Keys from CONVEYOR_API_KEYS belong to the `default` project."""
        keys = self.settings.api_key_list
        if keys:
            project = self.projects.ensure_project(DEFAULT_PROJECT)
            for key in keys:
                self.projects.add_key(project, key)

    async def aclose(self) -> None:
        await self.waiter.stop()
        await self.redis.aclose()
        await self.registry.aclose()
        self.db.dispose()
