"""Human feedback on spans. Every submission is kept; the newest one is the span's feedback."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from app.store.datasets import EntryRecord, NewEntry, add_entry, ensure_dataset
from app.store.db import Database
from app.store.tables_functions import SpanFeedback


@dataclass(frozen=True)
class Feedback:
    span_id: str
    score: float
    comment: str | None
    example_saved: bool
    dataset_entry_id: str | None
    created_at: datetime

    @classmethod
    def of(cls, row: SpanFeedback) -> Feedback:
        return cls(
            span_id=row.span_id,
            score=row.score,
            comment=row.comment,
            example_saved=row.example_saved,
            dataset_entry_id=row.dataset_entry_id,
            created_at=row.created_at,
        )


@dataclass(frozen=True)
class ExampleToSave:
    """The dataset entry a feedback submission saves, into the dataset of `function_id`."""

    function_id: str
    entry: NewEntry


def latest_feedback(db: Database, project_id: str, span_id: str) -> Feedback | None:
    """The newest feedback on a span of this project, or None (for `GET /spans/{id}`)."""
    with db.transaction() as session:
        row = session.scalars(
            select(SpanFeedback)
            .where(SpanFeedback.span_id == span_id, SpanFeedback.project_id == project_id)
            .order_by(SpanFeedback.created_at.desc(), SpanFeedback.id.desc())
            .limit(1)
        ).first()
        return Feedback.of(row) if row else None


class FeedbackRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def submit(
        self, project_id: str, span_id: str, score: float, comment: str | None, example: ExampleToSave | None
    ) -> tuple[Feedback, EntryRecord | None]:
        """Record feedback and, in the same transaction, the example it saves (if any)."""
        with self.db.transaction() as session:
            entry = None
            if example is not None:
                dataset_id = ensure_dataset(session, project_id, example.function_id)
                entry = add_entry(session, dataset_id, example.entry)
            row = SpanFeedback(
                project_id=project_id,
                span_id=span_id,
                score=score,
                comment=comment,
                example_saved=entry is not None,
                dataset_entry_id=entry.id if entry else None,
            )
            session.add(row)
            session.flush()
            return Feedback.of(row), entry

    def latest(self, project_id: str, span_id: str) -> Feedback | None:
        return latest_feedback(self.db, project_id, span_id)
