"""Tables of the functions area: each function's dataset, its entries, and feedback on spans.

`functions` and `function_revisions` themselves live in app/store/tables.py; `Base` is shared with it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Float, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.store.tables import Base, JSONType, UTCDateTime, new_id, utcnow


class Dataset(Base):
    """One per function, created with it: the examples its calls learn from (few-shot)."""

    __tablename__ = "datasets"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    function_id: Mapped[str] = mapped_column(ForeignKey("functions.id", ondelete="CASCADE"), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class DatasetEntry(Base):
    """An input/output/expected triple. `source_span_id` is set when the entry was saved from a call,
    and is unique per dataset so saving the same call twice keeps one entry."""

    __tablename__ = "dataset_entries"
    __table_args__ = (
        UniqueConstraint("dataset_id", "source_span_id", name="uq_dataset_entries_dataset_span"),
        Index("ix_dataset_entries_dataset_created", "dataset_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    input: Mapped[Any] = mapped_column(JSONType, nullable=True)
    output: Mapped[Any] = mapped_column(JSONType, nullable=True)
    expected: Mapped[Any] = mapped_column(JSONType, nullable=True)
    comment: Mapped[str | None] = mapped_column(Text)
    source_span_id: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class SpanFeedback(Base):
    """A human score (0..1) on a span; every submission is kept, the latest one is the span's feedback."""

    __tablename__ = "span_feedback"
    __table_args__ = (Index("ix_span_feedback_span_created", "span_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    span_id: Mapped[str] = mapped_column(ForeignKey("spans.id", ondelete="CASCADE"))
    score: Mapped[float] = mapped_column(Float)
    comment: Mapped[str | None] = mapped_column(Text)
    example_saved: Mapped[bool] = mapped_column(Boolean, default=False)
    dataset_entry_id: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
