"""Everything a worker process shares across its job threads, built once from settings."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import redis
import redis.asyncio as aioredis

from app.config import Settings
from app.engine.cache import RedisResultCache
from app.engine.executor import EngineDeps
from app.providers.registry import ProviderRegistry
from app.store.db import Database
from app.store.jobs import JobRepository
from workers.event_loop import EventLoopThread

log = logging.getLogger("conveyor.worker")


@dataclass
class WorkerRuntime:
    settings: Settings
    db: Database
    jobs: JobRepository
    redis: redis.Redis  # for publishing from job threads
    loop: EventLoopThread
    engine_deps: EngineDeps

    @classmethod
    def build(cls, settings: Settings) -> WorkerRuntime:
        # Job threads hold a connection only around claim/renew/finish, so the pool stays small.
        db = Database(settings.database_url, pool_size=settings.db_pool_size)
        loop = EventLoopThread()
        deps = EngineDeps.from_settings(
            settings,
            resolver=ProviderRegistry(settings),
            cache=RedisResultCache(aioredis.Redis.from_url(settings.redis_url)),
        )
        return cls(
            settings=settings,
            db=db,
            jobs=JobRepository(db),
            redis=redis.Redis.from_url(settings.redis_url),
            loop=loop,
            engine_deps=deps,
        )

    def close(self) -> None:
        try:
            self.loop.run(self.engine_deps.resolver.aclose(), timeout=5)
        except Exception:  # closing is best effort at shutdown
            log.exception("closing provider clients failed")
        self.loop.stop()
        self.db.dispose()
