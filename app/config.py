"""Settings read from the environment (and `.env`), injected everywhere; never read at import time."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def normalise_database_url(url: str) -> str:
    """Accept the common `postgresql://` / `postgres://` forms and pick the psycopg 3 driver."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    # --- services -------------------------------------------------------------------------------
    redis_url: str = Field("redis://127.0.0.1:6379/0", validation_alias=AliasChoices("REDIS_URL"))
    database_url: str = Field("sqlite:///.conveyor/conveyor.sqlite3", validation_alias=AliasChoices("DATABASE_URL"))
    port: int = Field(8000, validation_alias=AliasChoices("PORT"))
    host: str = Field("127.0.0.1", validation_alias=AliasChoices("CONVEYOR_HOST", "HOST"))

    # --- auth -----------------------------------------------------------------------------------
    api_keys: str = Field("", validation_alias=AliasChoices("CONVEYOR_API_KEYS"))

    # --- models and providers ---------------------------------------------------------------------
    default_model: str = Field("openai/gpt-4o-mini", validation_alias=AliasChoices("CONVEYOR_DEFAULT_MODEL"))
    openai_api_key: str = Field("", validation_alias=AliasChoices("OPENAI_API_KEY"))
    openai_base_url: str = Field("https://api.openai.com/v1", validation_alias=AliasChoices("OPENAI_BASE_URL"))
    anthropic_api_key: str = Field("", validation_alias=AliasChoices("ANTHROPIC_API_KEY"))
    anthropic_base_url: str = Field("https://api.anthropic.com", validation_alias=AliasChoices("ANTHROPIC_BASE_URL"))
    fake_provider_url: str = Field("http://127.0.0.1:8765", validation_alias=AliasChoices("CONVEYOR_FAKE_PROVIDER_URL"))
    provider_timeout_seconds: float = Field(600.0, validation_alias=AliasChoices("CONVEYOR_PROVIDER_TIMEOUT"))
    provider_connect_timeout_seconds: float = Field(
        10.0, validation_alias=AliasChoices("CONVEYOR_PROVIDER_CONNECT_TIMEOUT")
    )
    provider_max_connections: int = Field(10_000, validation_alias=AliasChoices("CONVEYOR_PROVIDER_MAX_CONNECTIONS"))
    max_retry_after_seconds: float = Field(20.0, validation_alias=AliasChoices("CONVEYOR_MAX_RETRY_AFTER"))
    rate_limit_retries: int = Field(2, validation_alias=AliasChoices("CONVEYOR_RATE_LIMIT_RETRIES"))
    # Global limits per model and provider key, JSON (see app/ratelimit/limits.py); checked at start-up.
    rate_limits: str = Field("", validation_alias=AliasChoices("CONVEYOR_RATE_LIMITS"))
    embedding_model: str = Field(
        "openai/text-embedding-3-small", validation_alias=AliasChoices("CONVEYOR_EMBEDDING_MODEL")
    )
    custom_model_cache_seconds: float = Field(
        60.0, validation_alias=AliasChoices("CONVEYOR_CUSTOM_MODEL_CACHE_SECONDS")
    )
    # Encrypts stored secrets (custom models' api_key, webhook signing secrets); see app/secrets.py.
    secret_key: str = Field("", repr=False, validation_alias=AliasChoices("CONVEYOR_SECRET_KEY"))

    # --- billing --------------------------------------------------------------------------------
    platform_fee_rate: float = Field(0.0, validation_alias=AliasChoices("CONVEYOR_PLATFORM_FEE_RATE"))
    price_table_path: str = Field("", validation_alias=AliasChoices("CONVEYOR_PRICE_TABLE"))

    # --- jobs and workers -----------------------------------------------------------------------
    call_wait_seconds: float = Field(600.0, validation_alias=AliasChoices("CONVEYOR_CALL_WAIT_SECONDS"))
    job_hard_time_limit: int = Field(900, validation_alias=AliasChoices("CONVEYOR_JOB_HARD_TIME_LIMIT"))
    job_lease_seconds: int = Field(60, validation_alias=AliasChoices("CONVEYOR_JOB_LEASE_SECONDS"))
    sweep_interval_seconds: float = Field(10.0, validation_alias=AliasChoices("CONVEYOR_SWEEP_INTERVAL"))
    # An interactive job queued this long has its message sent again (workers/periodic.py): the backstop
    # for a message lost in transit (an API that died before enqueueing, a broker connection cut).
    stranded_after_seconds: float = Field(300.0, gt=0, validation_alias=AliasChoices("CONVEYOR_STRANDED_AFTER"))
    worker_concurrency: int = Field(1000, validation_alias=AliasChoices("CONVEYOR_WORKER_CONCURRENCY"))
    db_pool_size: int = Field(20, validation_alias=AliasChoices("CONVEYOR_DB_POOL_SIZE"))
    max_body_bytes: int = Field(10 * 1024 * 1024, validation_alias=AliasChoices("CONVEYOR_MAX_BODY_BYTES"))
    batch_max_upload_bytes: int = Field(1024**3, validation_alias=AliasChoices("CONVEYOR_BATCH_MAX_UPLOAD_BYTES"))
    # Provider batches (app/services/provider_batches.py): how often each is polled, and the most
    # requests / bytes one provider batch takes (0: the provider's own limit; tests lower them to split).
    provider_batch_poll_seconds: float = Field(
        60.0, gt=0, validation_alias=AliasChoices("CONVEYOR_PROVIDER_BATCH_POLL_SECONDS")
    )
    provider_batch_max_requests: int = Field(
        0, ge=0, validation_alias=AliasChoices("CONVEYOR_PROVIDER_BATCH_MAX_REQUESTS")
    )
    provider_batch_max_bytes: int = Field(0, ge=0, validation_alias=AliasChoices("CONVEYOR_PROVIDER_BATCH_MAX_BYTES"))
    # The provider-batch loop runs on one worker at a time, under a Redis lock of this TTL, refreshed every
    # third of it: a worker that dies is taken over within this long (tests shorten it).
    provider_batch_lock_seconds: float = Field(
        5.0, gt=0, validation_alias=AliasChoices("CONVEYOR_PROVIDER_BATCH_LOCK_SECONDS")
    )

    # --- delivery modes: jobs, streams, webhooks --------------------------------------------------
    job_max_wait_seconds: float = Field(60.0, validation_alias=AliasChoices("CONVEYOR_JOB_MAX_WAIT_SECONDS"))
    # An Idempotency-Key reserved by a request that bound no job this long ago is taken over by a retry
    # (its request died: an API crash between reserving the key and writing the job); till then, 409.
    idempotency_reservation_seconds: float = Field(
        60.0, gt=0, validation_alias=AliasChoices("CONVEYOR_IDEMPOTENCY_RESERVATION_SECONDS")
    )
    # A waiting call re-reads its job this often besides listening for its announcement (app/services/waiter.py).
    wait_recheck_seconds: float = Field(5.0, gt=0, validation_alias=AliasChoices("CONVEYOR_WAIT_RECHECK_SECONDS"))
    stream_keepalive_seconds: float = Field(15.0, validation_alias=AliasChoices("CONVEYOR_STREAM_KEEPALIVE"))
    webhook_retry_schedule: str = Field(
        "5,300,1800,7200,18000,36000,36000", validation_alias=AliasChoices("CONVEYOR_WEBHOOK_RETRY_SCHEDULE")
    )
    webhook_timeout_seconds: float = Field(15.0, validation_alias=AliasChoices("CONVEYOR_WEBHOOK_TIMEOUT"))
    webhook_poll_interval_seconds: float = Field(1.0, validation_alias=AliasChoices("CONVEYOR_WEBHOOK_POLL_INTERVAL"))
    webhook_max_inline_bytes: int = Field(64 * 1024, validation_alias=AliasChoices("CONVEYOR_WEBHOOK_MAX_INLINE_BYTES"))
    allow_private_webhooks: bool = Field(False, validation_alias=AliasChoices("CONVEYOR_ALLOW_PRIVATE_WEBHOOKS"))

    # --- embedded mode --------------------------------------------------------------------------
    data_dir: Path = Field(Path(".conveyor"), validation_alias=AliasChoices("CONVEYOR_DATA_DIR"))
    demo: bool = Field(False, validation_alias=AliasChoices("CONVEYOR_DEMO"))
    embedded_redis: Literal["auto", "redis-server", "fakeredis"] = Field(
        "auto", validation_alias=AliasChoices("CONVEYOR_EMBEDDED_REDIS")
    )

    # --- metrics (app/metrics/) -------------------------------------------------------------------
    # When set, GET /metrics requires `Authorization: Bearer <this token>`.
    metrics_token: str = Field("", repr=False, validation_alias=AliasChoices("CONVEYOR_METRICS_TOKEN"))
    # When set, each worker serves its own process metrics on this port (on CONVEYOR_HOST).
    worker_metrics_port: int | None = Field(None, validation_alias=AliasChoices("CONVEYOR_WORKER_METRICS_PORT"))

    log_level: str = Field("INFO", validation_alias=AliasChoices("CONVEYOR_LOG_LEVEL", "LOG_LEVEL"))

    @field_validator("database_url")
    @classmethod
    def _normalise_db(cls, value: str) -> str:
        return normalise_database_url(value)

    @field_validator("rate_limits")
    @classmethod
    def _check_rate_limits(cls, value: str) -> str:
        # Imported here: app.ratelimit pulls in redis and the store's keys, which settings never need.
        from app.ratelimit.limits import RateLimitConfig

        RateLimitConfig.parse(value)  # RateLimitConfigError (a ValueError) names the model and the key
        return value

    @field_validator("webhook_retry_schedule")
    @classmethod
    def _check_schedule(cls, value: str) -> str:
        try:
            delays = [float(part) for part in value.split(",") if part.strip()]
        except ValueError:
            raise ValueError("a comma-separated list of seconds, e.g. 5,300,1800") from None
        if any(delay < 0 for delay in delays):
            raise ValueError("delays must be 0 or more seconds")
        return value

    @property
    def webhook_retry_delays(self) -> tuple[float, ...]:
        """Seconds before each retry of a failed webhook delivery (retries = its length)."""
        return tuple(float(part) for part in self.webhook_retry_schedule.split(",") if part.strip())

    @property
    def api_key_list(self) -> list[str]:
        return [key.strip() for key in self.api_keys.split(",") if key.strip()]

    @property
    def visibility_timeout_seconds(self) -> int:
        """Broker redelivery must never race a job still inside its hard time limit."""
        return self.job_hard_time_limit + 300


@lru_cache
def get_settings() -> Settings:
    return Settings()
