"""Standard Webhooks (https://www.standardwebhooks.com): secrets, signatures, the event payload,
the retry schedule, and the check that keeps webhook URLs off private networks.

    webhook-id         the message id, the same on every attempt and redelivery
    webhook-timestamp  seconds since the epoch, of this attempt
    webhook-signature  `v1,<base64 HMAC-SHA256(secret, "{id}.{timestamp}.{body}")>`, one per secret,
                       space-separated (several while the receiver rotates secrets)
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import ipaddress
import json
import os
import random
import socket
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from app.errors import BadRequest
from app.secrets import SECRET_KEY_SETTING, SecretBox, SecretUnreadable
from app.store.jobs import JobRecord
from app.store.tables import JobStatus, new_id, utcnow
from app.store.tables_delivery import DeliveryStatus, WebhookDelivery

SECRET_PREFIX = "whsec_"
MAX_SECRETS = 3
JITTER = 0.1  # each retry delay is moved by up to ±10 %, so failed receivers are not hit in lockstep
MAX_RETRY_AFTER = 24 * 3600.0


# --- secrets and signatures ---------------------------------------------------------------------


def generate_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(os.urandom(32)).decode()


def secret_bytes(secret: str) -> bytes:
    """The key of a `whsec_<base64>` secret; ValueError when it is not one."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError(f"must start with {SECRET_PREFIX!r}")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"must be {SECRET_PREFIX!r} followed by base64") from None
    if not 16 <= len(key) <= 64:
        raise ValueError("must encode 16 to 64 bytes")
    return key


def parse_secrets(value: str | Sequence[str] | None) -> tuple[str, ...]:
    """The signing secrets of a webhook request (newest first); a new one when none is given."""
    if value is None:
        return (generate_secret(),)
    secrets = (value,) if isinstance(value, str) else tuple(value)
    if not 1 <= len(secrets) <= MAX_SECRETS:
        raise BadRequest(f"give 1 to {MAX_SECRETS} secrets", field_name="webhook.secret")
    for index, secret in enumerate(secrets):
        try:
            secret_bytes(secret)
        except ValueError as exc:
            where = "webhook.secret" if isinstance(value, str) else f"webhook.secret[{index}]"
            raise BadRequest(str(exc), field_name=where) from None
    return secrets


def seal_secrets(secrets: Sequence[str], box: SecretBox | None) -> tuple[str, ...]:
    """The secrets as stored: encrypted with `CONVEYOR_SECRET_KEY` (app/secrets.py, the box custom models'
    API keys are stored with); as given when the server has no key (the README says so)."""
    return tuple(box.encrypt(secret) for secret in secrets) if box is not None else tuple(secrets)


def open_secrets(stored: Sequence[str], box: SecretBox | None) -> tuple[str, ...]:
    """The signing secrets of stored ones: a `whsec_` value is plain (stored without a key), any other a
    Fernet token. SecretUnreadable when the key is missing or another than the one that sealed it."""
    opened = []
    for value in stored:
        if value.startswith(SECRET_PREFIX):
            opened.append(value)
        elif box is None:
            raise SecretUnreadable(f"a webhook secret is stored encrypted and {SECRET_KEY_SETTING} is not set")
        else:
            opened.append(box.decrypt(value))
    return tuple(opened)


def sign(message_id: str, timestamp: int, body: str, secrets: Sequence[str]) -> str:
    """The `webhook-signature` header value: one `v1,` signature per secret."""
    signed = f"{message_id}.{timestamp}.{body}".encode()
    return " ".join(
        "v1," + base64.b64encode(hmac.new(secret_bytes(s), signed, hashlib.sha256).digest()).decode() for s in secrets
    )


def webhook_headers(
    message_id: str, body: str, secrets: Sequence[str], *, now: datetime | None = None
) -> dict[str, str]:
    timestamp = int((now or utcnow()).timestamp())
    return {
        "content-type": "application/json",
        "user-agent": "Conveyor-Webhooks/1",
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(message_id, timestamp, body, secrets),
    }


# --- the event -------------------------------------------------------------------------------------

EVENT_TYPES = {
    JobStatus.succeeded: "job.succeeded",
    JobStatus.failed: "job.failed",
    JobStatus.cancelled: "job.cancelled",
}


def event_body(
    job: JobRecord,
    status: JobStatus,
    *,
    result: dict[str, Any] | None,
    error: dict[str, Any] | None,
    max_inline_bytes: int,
    at: datetime,
) -> str:
    """The thin JSON payload: what ended, how, and the result itself when it is small."""
    data: dict[str, Any] = {
        "id": job.id,
        "object": "job",
        "status": status.value,
        "span_id": job.span_id,
        "name": job.name,
        "metadata": job.meta,
        "links": {"self": f"/v2/jobs/{job.id}"},
    }
    if result is not None:
        inline = json.dumps(result, separators=(",", ":"))
        data["result_included"] = len(inline.encode()) <= max_inline_bytes
        if data["result_included"]:
            data["result"] = result
    if error is not None:
        data["error"] = {k: error.get(k) for k in ("type", "message", "detail")}
    envelope = {"type": EVENT_TYPES[status], "timestamp": at.isoformat(), "data": data}
    return json.dumps(envelope, separators=(",", ":"), default=str)


def new_delivery(
    job: JobRecord,
    status: JobStatus,
    *,
    result: dict[str, Any] | None = None,
    error: dict[str, Any] | None = None,
    max_inline_bytes: int,
    grace: timedelta,
) -> WebhookDelivery | None:
    """The delivery row to write in the same transaction as the job's final state (None: no webhook).

    It starts as pending but due only after `grace`: the writer dispatches it right after committing,
    and the periodic loop picks it up if that dispatch is lost."""
    if not job.webhook_url:
        return None
    now = utcnow()
    return WebhookDelivery(
        id=new_id(),
        job_id=job.id,
        project_id=job.project_id,
        message_id=f"msg_{job.id}",
        event_type=EVENT_TYPES[status],
        url=job.webhook_url,
        payload=event_body(job, status, result=result, error=error, max_inline_bytes=max_inline_bytes, at=now),
        status=DeliveryStatus.pending,
        attempt_count=0,
        retries_used=0,
        next_attempt_at=now + grace,
        created_at=now,
        updated_at=now,
    )


# --- retries -------------------------------------------------------------------------------------


def retry_delay(
    schedule: Sequence[float], retries_used: int, retry_after: float | None, rng: random.Random | None = None
) -> float | None:
    """Seconds until the next attempt, or None when the schedule is spent. Retry-After is honoured."""
    if retries_used >= len(schedule):
        return None
    delay = schedule[retries_used] * (1 + (rng or random).uniform(-JITTER, JITTER))
    if retry_after is not None:
        delay = max(delay, min(retry_after, MAX_RETRY_AFTER))
    return max(0.0, delay)


# --- where webhooks may go -----------------------------------------------------------------------


def parse_webhook_url(url: str) -> tuple[str, int]:
    if len(url) > 2048:
        raise BadRequest("must be at most 2048 characters", field_name="webhook.url")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadRequest("must be an absolute http:// or https:// URL", field_name="webhook.url")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise BadRequest("has an invalid port", field_name="webhook.url") from None
    return parts.hostname, port


def is_public_address(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_reserved
        or ip.is_multicast
        or ip.is_unspecified
        or not ip.is_global
    )


def refuse_private(host: str, addresses: list[str]) -> None:
    blocked = [a for a in addresses if not is_public_address(a)]
    if blocked or not addresses:
        raise BadRequest(
            f"{host!r} resolves to a loopback, private or link-local address ({', '.join(blocked) or 'none'}); "
            "set CONVEYOR_ALLOW_PRIVATE_WEBHOOKS=true to allow it",
            field_name="webhook.url",
        )


async def check_webhook_url(url: str, *, allow_private: bool) -> None:
    """400 unless `url` is http(s) and (unless allowed) every address it resolves to is public."""
    host, port = parse_webhook_url(url)
    if allow_private:
        return
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise BadRequest(f"the host {host!r} cannot be resolved: {exc}", field_name="webhook.url") from None
    refuse_private(host, [info[4][0] for info in infos])
