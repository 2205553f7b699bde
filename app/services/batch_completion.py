"""Ending a batch once all its items ended, with its one webhook (`batch.completed` / `batch.cancelled`).

The webhook reuses the job webhook machinery: a `webhook_deliveries` row of the batch (`batch_id`),
written in the same transaction as the batch's final state, signed (Standard Webhooks) with the
secrets kept on the batch, sent by the webhook workers with their retry schedule. Deliveries are
unique per batch, so a batch has one.
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta

from app.schemas.batches import BatchOut
from app.services.webhook_delivery import DISPATCH_GRACE, WebhookDispatcher
from app.store.batch_records import BatchRecord
from app.store.batches import BatchRepository
from app.store.tables import new_id, utcnow
from app.store.tables_batches import BatchStatus
from app.store.tables_delivery import DeliveryStatus, WebhookDelivery

log = logging.getLogger("conveyor.batches")

EVENT_TYPES = {
    BatchStatus.completed: "batch.completed",
    BatchStatus.cancelled: "batch.cancelled",
    BatchStatus.failed: "batch.failed",
}


def batch_delivery(batch: BatchRecord, *, grace: timedelta = DISPATCH_GRACE) -> WebhookDelivery | None:
    """The delivery announcing an ended batch (None: no webhook). Due after `grace`: the writer
    dispatches it at once after committing, and the periodic loop picks it up if that is lost."""
    if not batch.webhook_url:
        return None
    now = utcnow()
    data = BatchOut.of(batch, now=now).model_dump(mode="json", by_alias=True)
    envelope = {"type": EVENT_TYPES[batch.status], "timestamp": now.isoformat(), "data": data}
    return WebhookDelivery(
        id=new_id(),
        job_id=None,
        batch_id=batch.id,
        project_id=batch.project_id,
        message_id=f"msg_{batch.id}",
        event_type=EVENT_TYPES[batch.status],
        url=batch.webhook_url,
        payload=json.dumps(envelope, separators=(",", ":")),
        status=DeliveryStatus.pending,
        attempt_count=0,
        retries_used=0,
        next_attempt_at=now + grace,
        created_at=now,
        updated_at=now,
    )


class BatchCompletion:
    def __init__(self, batches: BatchRepository, webhooks: WebhookDispatcher) -> None:
        self.batches = batches
        self.webhooks = webhooks

    def end_if_done(self, batch_id: str) -> BatchRecord | None:
        """End the batch if all its items ended (once, whoever asks); then send its webhook."""
        written: list[WebhookDelivery] = []

        def rows_for(batch: BatchRecord) -> list[WebhookDelivery]:
            delivery = batch_delivery(batch)
            written.extend([delivery] if delivery is not None else [])
            return written

        ended = self.batches.end_if_done(batch_id, rows_for)
        if ended is None:
            return None
        log.info("batch ended", extra={"batch_id": batch_id, "status": ended.status.value})
        for delivery in written:
            try:
                self.webhooks.dispatch(delivery.id)
            except Exception:  # the webhook loop dispatches it once DISPATCH_GRACE has passed
                log.warning("could not dispatch a batch webhook", extra={"batch_id": batch_id}, exc_info=True)
        return ended
