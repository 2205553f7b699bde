"""What the API and the workers both know about batch items: the errors a cancelled batch's items end
with, and the batch templates merged into each item's task (read once per batch, as they never change)."""

from __future__ import annotations

import threading

from app.store.batch_records import BatchTemplate
from app.store.batches import BatchRepository

BATCH_CANCELLED_ERROR = {
    "type": "BatchCancelled",
    "message": "the batch was cancelled before this item ran",
    "detail": "the item never ran and was not billed",
    "status_code": 409,
}

BATCH_ABANDONED_ERROR = {
    "type": "BatchCancelled",
    "message": "the batch was cancelled while this item waited for rate-limit room or ran",
    "detail": "its provider call, if any had been sent, was abandoned; the item was not billed",
    "status_code": 409,
}


class TemplateCache:
    """Batch templates (and the trace context their items' spans link to) by batch id, for the workers:
    a template never changes, so it is read once."""

    def __init__(self, batches: BatchRepository, *, size: int = 256) -> None:
        self.batches = batches
        self.size = size
        self._templates: dict[str, BatchTemplate] = {}
        self._lock = threading.Lock()

    def get(self, batch_id: str) -> BatchTemplate | None:
        with self._lock:
            found = self._templates.get(batch_id)
        if found is not None:
            return found
        template = self.batches.template(batch_id)
        if template is not None:
            with self._lock:
                if len(self._templates) >= self.size:
                    self._templates.pop(next(iter(self._templates)))
                self._templates[batch_id] = template
        return template
