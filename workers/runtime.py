"""Everything a worker process shares, built once from settings: the database and Redis clients, the
event loop its jobs run on as coroutines, the few blocking threads their database writes go to, the
engine's dependencies (providers, cache, rate limiter, prices), cancellation, and webhook sending."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import redis
import redis.asyncio as aioredis

from app.config import Settings
from app.engine.cache import RedisResultCache
from app.engine.deps import EngineDeps
from app.metrics.models import ModelLabels
from app.metrics.worker import WorkerCounts
from app.observability import tracing
from app.providers.registry import ProviderRegistry
from app.queue import TaskQueue
from app.ratelimit import RateLimitConfig, RateLimiter
from app.secrets import secret_box
from app.services.model_catalog import ModelCatalog
from app.services.webhook_delivery import WebhookDispatcher, WebhookSender
from app.services.webhook_network import webhook_client
from app.store import keys
from app.store.db import Database
from app.store.jobs import JobRepository
from app.store.webhooks import WebhookDeliveryRepository
from workers.cancellation import CancelWatcher
from workers.event_loop import EventLoopThread

log = logging.getLogger("conveyor.worker")


@dataclass
class WorkerRuntime:
    settings: Settings
    db: Database
    jobs: JobRepository
    redis: redis.Redis  # for publishing from job threads
    async_redis: aioredis.Redis  # for publishing stream deltas from the event loop
    loop: EventLoopThread
    engine_deps: EngineDeps
    cancels: CancelWatcher
    # Jobs run as coroutines on `loop`; their database writes and blocking Redis calls run here, one
    # thread per pooled database connection, so a write never waits on the pool while holding a thread.
    blocking: ThreadPoolExecutor
    deliveries: WebhookDeliveryRepository
    dispatcher: WebhookDispatcher
    webhook_sender: WebhookSender
    counts: WorkerCounts  # this process's share of the cluster's metrics (app/metrics/worker.py)

    @classmethod
    def build(cls, settings: Settings, queue: TaskQueue) -> WorkerRuntime:
        # Jobs hold a connection only around claim/renew/finish (on `blocking`), so the pool stays small.
        db = Database(settings.database_url, pool_size=settings.db_pool_size)
        loop = EventLoopThread()
        async_redis = aioredis.Redis.from_url(settings.redis_url)
        sync_redis = redis.Redis.from_url(settings.redis_url)
        registry = ProviderRegistry(settings, custom_models=ModelCatalog.from_settings(db, settings).load_custom)
        # Runs on the loop's client, like every other coroutine of the process; slots are leased like jobs.
        limiter = RateLimiter(
            async_redis,
            RateLimitConfig.parse(settings.rate_limits),
            key_names=keys,
            lease_seconds=settings.job_lease_seconds,
        )
        deps = EngineDeps.from_settings(
            settings,
            resolver=registry,
            cache=RedisResultCache(async_redis, key_names=keys),
            rate_limiter=limiter,
            observer=tracing.attempt_observer(),  # None unless tracing is on
        )
        counts = WorkerCounts(ModelLabels.of(settings, deps.prices, registry.known_prefixes()))
        limiter.on_wait = counts.rate_wait
        registry.on_custom_model_loaded(deps.prices.set_custom_model_price)  # custom models bill at their prices
        deliveries = WebhookDeliveryRepository(db)
        client = webhook_client(settings.webhook_timeout_seconds, allow_private=settings.allow_private_webhooks)
        return cls(
            settings=settings,
            db=db,
            jobs=JobRepository(db),
            redis=sync_redis,
            async_redis=async_redis,
            loop=loop,
            engine_deps=deps,
            cancels=CancelWatcher(async_redis, loop),
            blocking=ThreadPoolExecutor(max_workers=settings.db_pool_size, thread_name_prefix="conveyor-db"),
            deliveries=deliveries,
            dispatcher=WebhookDispatcher(deliveries, queue),
            webhook_sender=WebhookSender(
                client, schedule=settings.webhook_retry_delays, box=secret_box(settings.secret_key)
            ),
            counts=counts,
        )

    def start(self) -> None:
        self.cancels.start()

    def close(self) -> None:
        self.cancels.stop()
        try:
            self.loop.run(self.engine_deps.resolver.aclose(), timeout=5)
        except Exception:  # closing is best effort at shutdown
            log.exception("closing provider clients failed")
        self.webhook_sender.client.close()
        self.blocking.shutdown(wait=True)
        self.loop.stop()
        self.db.dispose()
