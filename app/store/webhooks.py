"""Webhook deliveries: dispatch due ones to workers, let one worker send each, log every attempt.

The retry schedule lives in the database (`next_attempt_at`), never in broker ETAs: a periodic loop
dispatches due deliveries with a token, and only a worker presenting the current token may take a
delivery (one at a time), so a duplicate broker message never sends twice and a message left over
from an earlier attempt never sends before the next scheduled time.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update

from app.store.db import Database
from app.store.tables import Job, utcnow
from app.store.tables_batches import Batch
from app.store.tables_delivery import DeliveryStatus, WebhookAttempt, WebhookDelivery


@dataclass(frozen=True)
class AttemptLog:
    number: int
    started_at: datetime
    duration_ms: int
    status_code: int | None
    error: str | None
    response_excerpt: str | None
    succeeded: bool
    next_attempt_at: datetime | None


@dataclass(frozen=True)
class DeliveryRecord:
    id: str
    job_id: str | None  # the job it is about, or
    project_id: str
    message_id: str
    event_type: str
    url: str
    payload: str
    status: DeliveryStatus
    attempt_count: int
    retries_used: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime
    attempts: tuple[AttemptLog, ...] = ()
    batch_id: str | None = None  # the batch it is about

    @classmethod
    def of(cls, row: WebhookDelivery, attempts: tuple[AttemptLog, ...] = ()) -> DeliveryRecord:
        return cls(
            id=row.id,
            job_id=row.job_id,
            batch_id=row.batch_id,
            project_id=row.project_id,
            message_id=row.message_id,
            event_type=row.event_type,
            url=row.url,
            payload=row.payload,
            status=DeliveryStatus(row.status),
            attempt_count=row.attempt_count,
            retries_used=row.retries_used,
            next_attempt_at=row.next_attempt_at,
            last_status_code=row.last_status_code,
            last_error=row.last_error,
            created_at=row.created_at,
            updated_at=row.updated_at,
            attempts=attempts,
        )


@dataclass(frozen=True)
class Dispatch:
    """A delivery handed to the queue; the worker must present `token` to send it."""

    delivery_id: str
    token: str


@dataclass(frozen=True)
class SendClaim:
    delivery: DeliveryRecord
    token: str
    secrets: tuple[str, ...]  # the job's signing secrets, newest first


@dataclass(frozen=True)
class AttemptOutcome:
    """What one POST did and what happens next (`status`: succeeded, pending (retry), failed, gone)."""

    started_at: datetime
    duration_ms: int
    status: DeliveryStatus
    status_code: int | None = None
    error: str | None = None
    response_excerpt: str | None = None
    next_attempt_at: datetime | None = None


class WebhookDeliveryRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def dispatch_due(self, *, grace: timedelta, limit: int = 200) -> list[Dispatch]:
        """Hand every due pending delivery a fresh token; `grace` later it is due again if nobody sent it."""
        now = utcnow()
        with self.db.transaction() as session:
            due = session.scalars(
                select(WebhookDelivery.id)
                .where(WebhookDelivery.status == DeliveryStatus.pending, WebhookDelivery.next_attempt_at <= now)
                .order_by(WebhookDelivery.next_attempt_at)
                .limit(limit)
            ).all()
        dispatched = [self.dispatch(delivery_id, grace=grace, due_by=now) for delivery_id in due]
        return [d for d in dispatched if d is not None]

    def dispatch(self, delivery_id: str, *, grace: timedelta, due_by: datetime | None = None) -> Dispatch | None:
        """Hand a pending delivery to the queue (due or not, unless `due_by` is given).

        A delivery dispatched again before a worker took it keeps its token, so a message stuck
        behind a long queue stays valid; the token changes only once an attempt has been made."""
        now = utcnow()
        conditions = [WebhookDelivery.id == delivery_id, WebhookDelivery.status == DeliveryStatus.pending]
        if due_by is not None:
            conditions.append(WebhookDelivery.next_attempt_at <= due_by)
        with self.db.transaction() as session:
            moved = session.execute(
                update(WebhookDelivery)
                .where(*conditions)
                .values(
                    dispatch_token=func.coalesce(WebhookDelivery.dispatch_token, str(uuid.uuid4())),
                    next_attempt_at=now + grace,
                )
                .execution_options(synchronize_session=False)
            ).rowcount
            if not moved:
                return None
            token = session.scalar(select(WebhookDelivery.dispatch_token).where(WebhookDelivery.id == delivery_id))
        return Dispatch(delivery_id, token)

    def take(self, delivery_id: str, token: str, *, lease: timedelta) -> SendClaim | None:
        """Become the one sender of a dispatched delivery; None for a stale or duplicate message."""
        with self.db.transaction() as session:
            taken = session.execute(
                update(WebhookDelivery)
                .where(
                    WebhookDelivery.id == delivery_id,
                    WebhookDelivery.status == DeliveryStatus.pending,
                    WebhookDelivery.dispatch_token == token,
                )
                .values(status=DeliveryStatus.sending, lease_expires_at=utcnow() + lease)
                .execution_options(synchronize_session=False)
            ).rowcount
            if not taken:
                return None
            row = session.get(WebhookDelivery, delivery_id)
            if row.batch_id is not None:
                secrets = session.scalar(select(Batch.webhook_secrets).where(Batch.id == row.batch_id)) or []
            else:
                secrets = session.scalar(select(Job.webhook_secrets).where(Job.id == row.job_id)) or []
            return SendClaim(DeliveryRecord.of(row), token, tuple(secrets))

    def record(self, claim: SendClaim, outcome: AttemptOutcome) -> bool:
        """Log the attempt and move the delivery on; False if it was taken from us meanwhile."""
        delivery = claim.delivery
        with self.db.transaction() as session:
            number = delivery.attempt_count + 1
            session.add(
                WebhookAttempt(
                    delivery_id=delivery.id,
                    number=number,
                    started_at=outcome.started_at,
                    duration_ms=outcome.duration_ms,
                    status_code=outcome.status_code,
                    error=outcome.error,
                    response_excerpt=outcome.response_excerpt,
                    succeeded=outcome.status is DeliveryStatus.succeeded,
                    next_attempt_at=outcome.next_attempt_at,
                )
            )
            retried = outcome.status is DeliveryStatus.pending
            moved = session.execute(
                update(WebhookDelivery)
                .where(
                    WebhookDelivery.id == delivery.id,
                    WebhookDelivery.status == DeliveryStatus.sending,
                    WebhookDelivery.dispatch_token == claim.token,
                )
                .values(
                    status=outcome.status,
                    attempt_count=number,
                    retries_used=delivery.retries_used + (1 if retried else 0),
                    next_attempt_at=outcome.next_attempt_at,
                    dispatch_token=None,
                    lease_expires_at=None,
                    last_status_code=outcome.status_code,
                    last_error=outcome.error,
                    updated_at=utcnow(),
                )
                .execution_options(synchronize_session=False)
            ).rowcount
            if moved and outcome.status is DeliveryStatus.gone:
                # 410 means the endpoint is gone: stop this project's other pending retries to it too.
                session.execute(
                    update(WebhookDelivery)
                    .where(
                        WebhookDelivery.project_id == delivery.project_id,
                        WebhookDelivery.url == delivery.url,
                        WebhookDelivery.status == DeliveryStatus.pending,
                        WebhookDelivery.attempt_count > 0,
                    )
                    .values(
                        status=DeliveryStatus.gone, last_error="the endpoint answered 410 Gone", updated_at=utcnow()
                    )
                    .execution_options(synchronize_session=False)
                )
            return bool(moved)

    def requeue_stuck(self) -> int:
        """Deliveries whose sender died mid-send become due again at once."""
        now = utcnow()
        with self.db.transaction() as session:
            return session.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.status == DeliveryStatus.sending, WebhookDelivery.lease_expires_at < now)
                .values(status=DeliveryStatus.pending, next_attempt_at=now, dispatch_token=None, lease_expires_at=None)
                .execution_options(synchronize_session=False)
            ).rowcount

    def for_job(self, project_id: str, job_id: str, *, offset: int, limit: int) -> tuple[list[DeliveryRecord], int]:
        """A job's deliveries with their attempt logs (oldest first)."""
        return self._page((WebhookDelivery.project_id == project_id, WebhookDelivery.job_id == job_id), offset, limit)

    def for_batch(self, project_id: str, batch_id: str, *, offset: int, limit: int) -> tuple[list[DeliveryRecord], int]:
        """A batch's delivery (it has at most one) with its attempt log."""
        conditions = (WebhookDelivery.project_id == project_id, WebhookDelivery.batch_id == batch_id)
        return self._page(conditions, offset, limit)

    def get_of_batch(self, project_id: str, batch_id: str, delivery_id: str) -> DeliveryRecord | None:
        found, _ = self._page(
            (
                WebhookDelivery.id == delivery_id,
                WebhookDelivery.batch_id == batch_id,
                WebhookDelivery.project_id == project_id,
            ),
            0,
            1,
        )
        return found[0] if found else None

    def _page(self, conditions: tuple, offset: int, limit: int) -> tuple[list[DeliveryRecord], int]:
        with self.db.transaction() as session:
            total = session.scalar(select(func.count()).select_from(WebhookDelivery).where(*conditions)) or 0
            rows = session.scalars(
                select(WebhookDelivery)
                .where(*conditions)
                .order_by(WebhookDelivery.created_at)
                .offset(offset)
                .limit(limit)
            ).all()
            return [DeliveryRecord.of(row, self._attempts(session, row.id)) for row in rows], total

    def get(self, project_id: str, job_id: str, delivery_id: str) -> DeliveryRecord | None:
        with self.db.transaction() as session:
            row = session.scalars(
                select(WebhookDelivery).where(
                    WebhookDelivery.id == delivery_id,
                    WebhookDelivery.job_id == job_id,
                    WebhookDelivery.project_id == project_id,
                )
            ).first()
            return DeliveryRecord.of(row, self._attempts(session, row.id)) if row else None

    def reset_for_redelivery(self, delivery_id: str) -> bool:
        """Make a delivery due now with a fresh retry schedule; False while a worker is sending it."""
        with self.db.transaction() as session:
            return bool(
                session.execute(
                    update(WebhookDelivery)
                    .where(WebhookDelivery.id == delivery_id, WebhookDelivery.status != DeliveryStatus.sending)
                    .values(
                        status=DeliveryStatus.pending,
                        next_attempt_at=utcnow(),
                        retries_used=0,
                        dispatch_token=None,
                        updated_at=utcnow(),
                    )
                    .execution_options(synchronize_session=False)
                ).rowcount
            )

    @staticmethod
    def _attempts(session, delivery_id: str) -> tuple[AttemptLog, ...]:  # noqa: ANN001 - a Session
        rows = session.scalars(
            select(WebhookAttempt).where(WebhookAttempt.delivery_id == delivery_id).order_by(WebhookAttempt.number)
        )
        return tuple(
            AttemptLog(
                number=a.number,
                started_at=a.started_at,
                duration_ms=a.duration_ms,
                status_code=a.status_code,
                error=a.error,
                response_excerpt=a.response_excerpt,
                succeeded=a.succeeded,
                next_attempt_at=a.next_attempt_at,
            )
            for a in rows
        )
