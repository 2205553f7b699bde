"""Tables of the batches area: the batch and its striped progress counters.

A batch's items are rows of `jobs` (`tables.Job`: `batch_id`, `batch_seq`, `custom_id`, `dispatched_at`).
An item row keeps only its own part of the task (`name`, `input`, `tags`); the rest of the resolved
TaskSpec, the same for every item, is the batch's `task_template`, merged in by the worker.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Enum, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.store.tables import Base, JSONType, UTCDateTime, new_id, utcnow

# Counters are spread over this many rows per batch: at several hundred item transitions a second,
# one counter row serialises every claim and finish behind its row lock (see README "Batches").
COUNTER_STRIPES = 16


class BatchStatus(enum.StrEnum):
    validating = "validating"  # its upload is being read; invisible to workers
    running = "running"
    completed = "completed"  # every item ended (some may have failed)
    cancelling = "cancelling"  # queued items cancelled; running ones are finishing
    cancelled = "cancelled"
    failed = "failed"  # could not run at all (its intake died half-way)

    @property
    def is_final(self) -> bool:
        return self in (BatchStatus.completed, BatchStatus.cancelled, BatchStatus.failed)


class Batch(Base):
    __tablename__ = "batches"
    __table_args__ = (
        Index("ix_batches_project_created", "project_id", "created_at"),
        Index("ix_batches_status", "status"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    status: Mapped[BatchStatus] = mapped_column(
        Enum(BatchStatus, native_enum=False, length=16), default=BatchStatus.validating
    )
    function_id: Mapped[str | None] = mapped_column(String(36))
    revision_id: Mapped[str | None] = mapped_column(String(36))
    task_template: Mapped[dict[str, Any]] = mapped_column(JSONType)  # a TaskSpec dict without input and tags
    # The first item: it carries the Idempotency-Key binding (the webhook is the batch's own).
    anchor_job_id: Mapped[str | None] = mapped_column(String(36))
    webhook_url: Mapped[str | None] = mapped_column(String(2048))
    webhook_secrets: Mapped[list[str] | None] = mapped_column(JSONType)  # `whsec_...`, newest first
    meta: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    completion_window: Mapped[str | None] = mapped_column(String(32))
    # "queue" (the workers call the models) or "provider" (the providers' batch APIs); null: queue.
    execution: Mapped[str | None] = mapped_column(String(16))
    total: Mapped[int] = mapped_column(Integer, default=0)
    invalid_count: Mapped[int] = mapped_column(Integer, default=0)
    invalid_items: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONType)  # the first 100
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)  # intake heartbeat
    cancel_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The submitting request's trace context (migration 0012): each item's spans link to it.
    trace_context: Mapped[str | None] = mapped_column(Text)


class BatchCounter(Base):
    """One stripe of a batch's progress; the batch's figures are the sums over its stripes.

    Each item transition adds to the stripe its job id hashes to, in the transition's own transaction."""

    __tablename__ = "batch_counters"

    batch_id: Mapped[str] = mapped_column(ForeignKey("batches.id", ondelete="CASCADE"), primary_key=True)
    stripe: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    running: Mapped[int] = mapped_column(Integer, default=0)
    succeeded: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    cancelled: Mapped[int] = mapped_column(Integer, default=0)
    input_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    output_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    total_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    cost_generation: Mapped[float] = mapped_column(Float, default=0.0)
    cost_platform: Mapped[float] = mapped_column(Float, default=0.0)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # its first claim
