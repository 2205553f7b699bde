"""Sending webhook deliveries: dispatching them to the worker queue, and one attempt's POST.

An attempt's outcome: 2xx within the timeout is success; 410 Gone stops retrying; anything else (another status, a
timeout, a refused connection, an address that now resolves privately) is retried on the schedule,
not before the receiver's `Retry-After`. Redirects are not followed: a 3xx is a failed attempt.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

import httpx

from app.errors import BadRequest
from app.queue import TaskQueue
from app.secrets import SecretBox, SecretUnreadable
from app.services.webhooks import open_secrets, parse_webhook_url, retry_delay, webhook_headers
from app.store.tables import utcnow
from app.store.tables_delivery import DeliveryStatus
from app.store.webhooks import AttemptOutcome, SendClaim, WebhookDeliveryRepository

EXCERPT_CHARS = 500
# A dispatched delivery nobody took within this long (a lost broker message) is dispatched again.
DISPATCH_GRACE = timedelta(minutes=2)


class WebhookDispatcher:
    """Puts deliveries on the webhook queue: right after they are written, and when their retry is due."""

    def __init__(self, deliveries: WebhookDeliveryRepository, queue: TaskQueue, *, grace: timedelta = DISPATCH_GRACE):
        self.deliveries = deliveries
        self.queue = queue
        self.grace = grace

    def dispatch(self, delivery_id: str) -> bool:
        dispatch = self.deliveries.dispatch(delivery_id, grace=self.grace)
        if dispatch is None:
            return False
        self.queue.enqueue_webhook(dispatch.delivery_id, dispatch.token)
        return True

    def dispatch_due(self) -> int:
        dispatched = self.deliveries.dispatch_due(grace=self.grace)
        for dispatch in dispatched:
            self.queue.enqueue_webhook(dispatch.delivery_id, dispatch.token)
        return len(dispatched)


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """`Retry-After` as seconds from now: delta-seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


class WebhookSender:
    def __init__(
        self,
        client: httpx.Client,
        *,
        schedule: Sequence[float],
        box: SecretBox | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.client = client  # on a CheckedTransport (webhook_network.py): it refuses private addresses
        self.schedule = tuple(schedule)
        self.box = box  # opens the stored signing secrets (webhooks.open_secrets)
        self.rng = rng or random.Random()

    def send(self, claim: SendClaim) -> AttemptOutcome:
        delivery = claim.delivery
        started = utcnow()
        clock = time.monotonic()
        status_code: int | None = None
        excerpt: str | None = None
        retry_after: float | None = None
        error: str | None = None
        try:
            parse_webhook_url(delivery.url)
            secrets = open_secrets(claim.secrets, self.box)
            response = self.client.post(
                delivery.url,
                content=delivery.payload.encode(),
                headers=webhook_headers(delivery.message_id, delivery.payload, secrets, now=started),
            )
            status_code = response.status_code
            excerpt = response.text[:EXCERPT_CHARS] or None
            retry_after = parse_retry_after(response.headers.get("retry-after"), utcnow())
        except BadRequest as exc:
            error = exc.message
        except SecretUnreadable as exc:
            error = str(exc)
        except httpx.TimeoutException:
            error = "the receiver did not answer in time"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        duration_ms = int((time.monotonic() - clock) * 1000)
        if status_code is not None and 200 <= status_code < 300:
            return AttemptOutcome(started, duration_ms, DeliveryStatus.succeeded, status_code, None, excerpt)
        if status_code == 410:
            error = "410 Gone: the endpoint does not want more deliveries; retries stopped"
            return AttemptOutcome(started, duration_ms, DeliveryStatus.gone, status_code, error, excerpt)
        if status_code is not None:
            error = f"the receiver answered {status_code}"
        delay = retry_delay(self.schedule, delivery.retries_used, retry_after, self.rng)
        if delay is None:
            return AttemptOutcome(started, duration_ms, DeliveryStatus.failed, status_code, error, excerpt)
        next_at = utcnow() + timedelta(seconds=delay)
        return AttemptOutcome(started, duration_ms, DeliveryStatus.pending, status_code, error, excerpt, next_at)
