"""A batch's webhook delivery, as the API shows it: listed with its attempts, and sent again on request
(the same message, a fresh retry schedule), as a job's deliveries are (app/services/jobs.py)."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool

from app.errors import Conflict, NotFound
from app.schemas.paging import Page
from app.services.webhook_delivery import WebhookDispatcher
from app.store.projects import ProjectRef
from app.store.webhooks import DeliveryRecord, WebhookDeliveryRepository


@dataclass
class BatchDeliveries:
    deliveries: WebhookDeliveryRepository
    dispatcher: WebhookDispatcher

    async def list(self, project: ProjectRef, batch_id: str, page: Page) -> tuple[list[DeliveryRecord], int]:
        """The caller has checked that the batch is the project's."""
        return await run_in_threadpool(
            lambda: self.deliveries.for_batch(project.id, batch_id, offset=page.offset, limit=page.limit)
        )

    async def redeliver(self, project: ProjectRef, batch_id: str, delivery_id: str) -> DeliveryRecord:
        delivery = await run_in_threadpool(self.deliveries.get_of_batch, project.id, batch_id, delivery_id)
        if delivery is None:
            raise NotFound("delivery not found", detail=f"delivery_id: no delivery {delivery_id} of this batch")
        if not await run_in_threadpool(self.deliveries.reset_for_redelivery, delivery_id):
            raise Conflict("the delivery is being sent right now", detail="delivery_id: retry once this attempt ends")
        await run_in_threadpool(self.dispatcher.dispatch, delivery_id)
        found = await run_in_threadpool(self.deliveries.get_of_batch, project.id, batch_id, delivery_id)
        return found or delivery
