"""Tables of the delivery area: idempotency keys and webhook deliveries with their attempt log.

`Base` is shared with app/store/tables.py; the job row itself (with its webhook and stream columns)
is `tables.Job`.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Enum, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.store.tables import Base, UTCDateTime, new_id, utcnow


class IdempotencyKey(Base):
    """An `Idempotency-Key` a project sent, the digest of the request it came with, and its job.

    `job_id` is NULL while the first request is still being accepted; the row goes with its job.
    """

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("project_id", "key", name="uq_idempotency_keys_project_key"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(255))
    request_digest: Mapped[str] = mapped_column(String(64))
    job_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class DeliveryStatus(enum.StrEnum):
    pending = "pending"  # waiting for `next_attempt_at` (or dispatched to a worker and not yet taken)
    sending = "sending"  # a worker holds it and is posting it now
    succeeded = "succeeded"
    failed = "failed"  # every scheduled retry failed
    gone = "gone"  # the receiver answered 410: no more retries

    @property
    def is_final(self) -> bool:
        return self in (DeliveryStatus.succeeded, DeliveryStatus.failed, DeliveryStatus.gone)


class WebhookDelivery(Base):
    """One webhook message about one job or one batch (each ends once, so it has at most one), and its
    retry state. Exactly one of `job_id` and `batch_id` is set.

    `payload` holds the exact body bytes, so every attempt and redelivery sends the same message.
    """

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("job_id", name="uq_webhook_deliveries_job"),
        UniqueConstraint("batch_id", name="uq_webhook_deliveries_batch"),
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    job_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    batch_id: Mapped[str | None] = mapped_column(ForeignKey("batches.id", ondelete="CASCADE"))
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    message_id: Mapped[str] = mapped_column(String(64))  # the `webhook-id` header, stable across attempts
    event_type: Mapped[str] = mapped_column(String(64))
    url: Mapped[str] = mapped_column(String(2048))
    payload: Mapped[str] = mapped_column(Text)
    status: Mapped[DeliveryStatus] = mapped_column(
        Enum(DeliveryStatus, native_enum=False, length=16), default=DeliveryStatus.pending
    )
    attempt_count: Mapped[int] = mapped_column(Integer, default=0)
    retries_used: Mapped[int] = mapped_column(Integer, default=0)  # position in the retry schedule
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Each dispatch to a worker carries a fresh token; only the message holding the current one may send.
    dispatch_token: Mapped[str | None] = mapped_column(String(36))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class WebhookAttempt(Base):
    """One POST of a delivery: when, what came back, and when the next try was scheduled."""

    __tablename__ = "webhook_attempts"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    delivery_id: Mapped[str] = mapped_column(ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    duration_ms: Mapped[int] = mapped_column(Integer)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    response_excerpt: Mapped[str | None] = mapped_column(Text)
    succeeded: Mapped[bool] = mapped_column(default=False)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
