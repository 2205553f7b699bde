"""The spans jobs wrote (each job's call span and one `generation` span per model attempt), looked up
by job id for many jobs at once: what a job listing needs besides the jobs (model, tokens, cost, timing)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select

from app.store.db import Database
from app.store.tables import Span


class JobSpanRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def of_jobs(self, project_id: str, job_ids: Sequence[str], span_type: str | None = None) -> list[Span]:
        """The project's spans of these jobs, ordered by job then start (call span before its attempts)."""
        query = select(Span).where(Span.project_id == project_id, Span.job_id.in_(list(job_ids)))
        if span_type is not None:
            query = query.where(Span.type == span_type)
        query = query.order_by(Span.job_id, Span.start_time.nulls_first(), Span.type.desc(), Span.id)
        with self.db.transaction() as session:
            spans = list(session.scalars(query))
            session.expunge_all()
        return spans
