"""SQLAlchemy table definitions. Postgres in production, SQLite in the embedded default."""

from __future__ import annotations

import enum
import os
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.sql.expression import false
from sqlalchemy.types import TypeDecorator

JSONType = JSON().with_variant(JSONB(), "postgresql")


def new_id() -> str:
    return str(uuid.uuid4())


def new_ids(count: int) -> list[str]:
    """`count` random (version 4) UUIDs, as `new_id` makes them, from one read of the OS's randomness.

    A 100,000-item batch needs 300,000 ids; `uuid4()` reads the OS's randomness once per id and builds
    a UUID object to format it, which took 14 % of the API's CPU accepting such a batch. Formatting the
    hex of one read is about six times faster per id."""
    digits = os.urandom(16 * count).hex()
    ids = []
    for start in range(0, 32 * count, 32):
        h = digits[start : start + 32]
        # Version nibble 4; the variant's two high bits 10 (RFC 9562), keeping the two random bits below.
        ids.append(f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}")
    return ids


_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """Timezone-aware datetimes on both backends (SQLite drops the offset; we store UTC and re-attach it)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(UTC)
            if dialect.name == "sqlite":
                value = value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    pass


class JobStatus(enum.StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"

    @property
    def is_final(self) -> bool:
        return self in (JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled)


class Project(Base):
    __tablename__ = "projects"
    __mapper_args__ = {"eager_defaults": False}  # nothing reads catalog_version back from an ORM insert

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Bumped in the same transaction as every change to the project's functions, aliases and custom
    # models: API processes cache those and write a job only while the version they read still holds.
    catalog_version: Mapped[int] = mapped_column(BigInteger, server_default="0")


class ApiKey(Base):
    """Keys are stored as SHA-256 digests: a leaked table does not leak working keys."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Function(Base):
    __tablename__ = "functions"
    __table_args__ = (UniqueConstraint("project_id", "name", name="uq_functions_project_name"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(500))
    current_revision_id: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class FunctionRevision(Base):
    """An immutable snapshot of a function's definition. `digest` detects an unchanged definition."""

    __tablename__ = "function_revisions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    function_id: Mapped[str] = mapped_column(ForeignKey("functions.id", ondelete="CASCADE"), index=True)
    definition: Mapped[dict[str, Any]] = mapped_column(JSONType)
    digest: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Job(Base):
    """One call, whatever the delivery mode. The state machine here, not the broker, is the truth."""

    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_status_lease", "status", "lease_expires_at"),
        Index("ix_jobs_project_created", "project_id", "created_at"),
        # Batch items only (partial indexes: interactive jobs stay out of them). Dispatch and status
        # filters walk (batch, status, position); results page by position; in-broker items are few.
        Index(
            "ix_jobs_batch_status",
            "batch_id",
            "status",
            "batch_seq",
            postgresql_where=text("batch_id IS NOT NULL"),
            sqlite_where=text("batch_id IS NOT NULL"),
        ),
        Index(
            "ix_jobs_batch_seq",
            "batch_id",
            "batch_seq",
            unique=True,
            postgresql_where=text("batch_id IS NOT NULL"),
            sqlite_where=text("batch_id IS NOT NULL"),
        ),
        Index(
            "ix_jobs_batch_dispatched",
            "batch_id",
            "dispatched_at",
            postgresql_where=text("dispatched_at IS NOT NULL"),
            sqlite_where=text("dispatched_at IS NOT NULL"),
        ),
        # Queued interactive jobs (few: they are claimed within moments), for the sweep that re-sends
        # those whose message may never have reached the broker (migration 0008).
        Index(
            "ix_jobs_interactive_queued",
            "created_at",
            postgresql_where=text("status = 'queued' AND batch_id IS NULL"),
            sqlite_where=text("status = 'queued' AND batch_id IS NULL"),
        ),
        # `GET /v2/jobs` lists interactive jobs only unless asked for batch items (migration 0009): a
        # project's page of jobs must not walk past its batches' hundred thousand items.
        Index(
            "ix_jobs_project_created_interactive",
            "project_id",
            "created_at",
            postgresql_where=text("batch_id IS NULL"),
            sqlite_where=text("batch_id IS NULL"),
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    function_id: Mapped[str | None] = mapped_column(String(36))
    revision_id: Mapped[str | None] = mapped_column(String(36))
    span_id: Mapped[str] = mapped_column(String(36), default=new_id)
    status: Mapped[JobStatus] = mapped_column(Enum(JobStatus, native_enum=False, length=16), default=JobStatus.queued)
    task: Mapped[dict[str, Any]] = mapped_column(JSONType)  # the resolved TaskSpec
    parent_span_id: Mapped[str | None] = mapped_column(String(36))
    trace_id: Mapped[str] = mapped_column(String(36))
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    delivery_attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_token: Mapped[str | None] = mapped_column(String(36))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Delivery modes (migration 0005): stream deltas over Redis, a signed webhook, caller metadata.
    stream: Mapped[bool] = mapped_column(default=False, server_default=false())
    webhook_url: Mapped[str | None] = mapped_column(String(2048))
    webhook_secrets: Mapped[list[str] | None] = mapped_column(JSONType)  # `whsec_...`, newest first
    meta: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    # Batch items (migration 0007). Their `task` holds only name, input and tags: the rest is the
    # batch's template. `dispatched_at` is set while a message for the item is on the broker; on a
    # queued interactive job, when the periodic duties last re-sent its message (see `resend_stranded`).
    batch_id: Mapped[str | None] = mapped_column(String(36))
    batch_seq: Mapped[int | None] = mapped_column(Integer)  # 1-based position in the submission
    custom_id: Mapped[str | None] = mapped_column(String(255))
    dispatched_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The trace context (JSON of its propagation headers) of the API request that submitted the job, when
    # the API exports traces (migration 0012): every run of the job is a child of it. Null on batch items
    # (their batch has one) and when tracing is off.
    trace_context: Mapped[str | None] = mapped_column(Text)


class Span(Base):
    """A unit of traced work: a call (`type='call'`), one model attempt (`'generation'`), or a user span."""

    __tablename__ = "spans"
    __table_args__ = (
        Index("ix_spans_project_trace", "project_id", "trace_id"),
        Index("ix_spans_project_start", "project_id", "start_time"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    trace_id: Mapped[str] = mapped_column(String(36))
    parent_id: Mapped[str | None] = mapped_column(String(36))
    job_id: Mapped[str | None] = mapped_column(String(36), index=True)
    function_id: Mapped[str | None] = mapped_column(String(36))
    revision_id: Mapped[str | None] = mapped_column(String(36))
    name: Mapped[str] = mapped_column(String(500))
    type: Mapped[str | None] = mapped_column(String(32))
    input: Mapped[Any] = mapped_column(JSONType, nullable=True)
    output: Mapped[Any] = mapped_column(JSONType, nullable=True)
    error: Mapped[str | None] = mapped_column(Text)
    meta: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    tags: Mapped[dict[str, str] | None] = mapped_column(JSONType)
    model: Mapped[str | None] = mapped_column(String(300))
    cached: Mapped[bool | None] = mapped_column(default=None)
    input_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    output_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    reasoning_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    total_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    cost_generation: Mapped[float] = mapped_column(Float, default=0.0)
    cost_platform: Mapped[float] = mapped_column(Float, default=0.0)
    score: Mapped[int | None] = mapped_column(Integer)
    start_time: Mapped[datetime | None] = mapped_column(UTCDateTime())
    end_time: Mapped[datetime | None] = mapped_column(UTCDateTime())
