"""Tables of provider-batch execution: a batch's requests sent through a provider's batch API.

A `provider_batches` row is written, with its items (`provider_batch_items`), before the provider is
asked to create anything: the intent. Its id goes out as the provider batch's metadata, so a worker
that died between the create call and recording the answer finds the provider batch again instead
of creating a second one. An item belongs to at most one provider batch (its primary key).
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Enum, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.store.tables import Base, UTCDateTime, new_id, utcnow


class ProviderBatchState(enum.StrEnum):
    preparing = "preparing"  # intent recorded; the provider may or may not have the batch yet
    submitted = "submitted"  # the provider has it (external_id known); polled until it ends
    collected = "collected"  # its answers were read and every item of it ended
    cancelled = "cancelled"  # cancelled before it was created at the provider, or with its batch

    @property
    def is_final(self) -> bool:
        return self in (ProviderBatchState.collected, ProviderBatchState.cancelled)


class ProviderBatch(Base):
    __tablename__ = "provider_batches"
    __table_args__ = (Index("ix_provider_batches_batch", "batch_id"), Index("ix_provider_batches_state", "state"))

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    batch_id: Mapped[str] = mapped_column(ForeignKey("batches.id", ondelete="CASCADE"))
    model: Mapped[str] = mapped_column(String(512))  # the chain's first model, `provider/model`
    state: Mapped[ProviderBatchState] = mapped_column(
        Enum(ProviderBatchState, native_enum=False, length=16), default=ProviderBatchState.preparing
    )
    external_id: Mapped[str | None] = mapped_column(String(255))
    external_state: Mapped[str | None] = mapped_column(String(64))  # the provider's own word for it
    item_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ProviderBatchItem(Base):
    __tablename__ = "provider_batch_items"
    __table_args__ = (Index("ix_provider_batch_items_pbatch", "provider_batch_id"),)

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    provider_batch_id: Mapped[str] = mapped_column(ForeignKey("provider_batches.id", ondelete="CASCADE"))
