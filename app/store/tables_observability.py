"""Tables of the observability area: metrics attached to spans. `Base` is shared with app/store/tables.py."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.store.tables import Base, UTCDateTime, new_id, utcnow


class SpanMetric(Base):
    """A named measurement of a span (an evaluation score, a latency...). One per dimension and span."""

    __tablename__ = "span_metrics"
    __table_args__ = (UniqueConstraint("span_id", "dimension", name="uq_span_metrics_span_dimension"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    span_id: Mapped[str] = mapped_column(ForeignKey("spans.id", ondelete="CASCADE"))
    dimension: Mapped[str] = mapped_column(String(200))
    value: Mapped[float] = mapped_column(Float)
    comment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
