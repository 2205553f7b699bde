"""Standard Webhooks signing (checked with the reference library), secrets, retries, URL guard, payload."""

import asyncio
import json
import random
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from app.errors import BadRequest
from app.services.webhook_delivery import parse_retry_after
from app.services.webhooks import (
    check_webhook_url,
    event_body,
    generate_secret,
    is_public_address,
    parse_secrets,
    retry_delay,
    webhook_headers,
)
from app.store.jobs import JobRecord
from app.store.tables import JobStatus

BODY = '{"type":"job.succeeded","data":{"id":"j1"}}'


def test_signature_verifies_with_the_reference_library():
    secret = generate_secret()
    headers = webhook_headers("msg_1", BODY, [secret])
    assert headers["webhook-signature"].startswith("v1,")
    assert Webhook(secret).verify(BODY, headers) == json.loads(BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(generate_secret()).verify(BODY, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY.replace("j1", "j2"), headers)


def test_rotation_signs_with_every_secret():
    new, old = generate_secret(), generate_secret()
    headers = webhook_headers("msg_1", BODY, [new, old])
    assert len(headers["webhook-signature"].split(" ")) == 2
    assert Webhook(new).verify(BODY, headers) and Webhook(old).verify(BODY, headers)


def test_timestamp_is_the_attempts_and_old_ones_are_refused_by_receivers():
    secret = generate_secret()
    stale = webhook_headers("msg_1", BODY, [secret], now=datetime.now(UTC) - timedelta(minutes=10))
    with pytest.raises(WebhookVerificationError, match="too old"):
        Webhook(secret).verify(BODY, stale)


def test_secrets_are_checked_and_generated():
    assert parse_secrets(None)[0].startswith("whsec_")
    assert parse_secrets("whsec_" + "A" * 32) == ("whsec_" + "A" * 32,)
    with pytest.raises(BadRequest) as err:
        parse_secrets("plain-password")
    assert err.value.detail == "webhook.secret: must start with 'whsec_'"
    with pytest.raises(BadRequest) as err:
        parse_secrets(["whsec_" + "A" * 32, "whsec_!!"])
    assert err.value.detail.startswith("webhook.secret[1]:")
    with pytest.raises(BadRequest):
        parse_secrets([generate_secret() for _ in range(4)])


def test_retry_delays_follow_the_schedule_with_jitter_and_retry_after():
    schedule = (5.0, 300.0)
    rng = random.Random(7)
    assert 4.5 <= retry_delay(schedule, 0, None, rng) <= 5.5
    assert 270 <= retry_delay(schedule, 1, None, rng) <= 330
    assert retry_delay(schedule, 2, None, rng) is None  # the schedule is spent
    assert retry_delay(schedule, 0, 120.0, rng) == 120.0  # not before the receiver asked
    assert 4.5 <= retry_delay(schedule, 0, 1.0, rng) <= 5.5


def test_retry_after_header_forms():
    now = datetime(2025, 1, 1, tzinfo=UTC)
    assert parse_retry_after("30", now) == 30
    assert parse_retry_after("Wed, 01 Jan 2025 00:01:00 GMT", now) == 60
    assert parse_retry_after("soon", now) is None and parse_retry_after(None, now) is None


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("192.168.0.1", False),
        ("172.16.5.4", False),
        ("169.254.169.254", False),
        ("::1", False),
        ("fe80::1", False),
        ("::ffff:127.0.0.1", False),
        ("0.0.0.0", False),
        ("8.8.8.8", True),
        ("2606:4700:4700::1111", True),
    ],
)
def test_public_addresses(address, public):
    assert is_public_address(address) is public


def test_webhook_urls_are_refused_on_private_networks_unless_allowed():
    async def check(url: str, allow: bool = False) -> str | None:
        try:
            await check_webhook_url(url, allow_private=allow)
        except BadRequest as exc:
            return exc.detail
        return None

    assert "loopback, private or link-local" in asyncio.run(check("http://127.0.0.1:9000/hook"))
    assert "loopback, private or link-local" in asyncio.run(check("http://localhost/hook"))
    assert asyncio.run(check("ftp://example.com/")) == "webhook.url: must be an absolute http:// or https:// URL"
    assert asyncio.run(check("http://127.0.0.1:9000/hook", allow=True)) is None


def _job(**kw) -> JobRecord:
    fields = dict(
        id="j1",
        project_id="p",
        status=JobStatus.succeeded,
        span_id="s1",
        trace_id="t",
        task={"name": "greet"},
        function_id=None,
        revision_id=None,
        parent_span_id=None,
        result=None,
        error=None,
        delivery_attempts=1,
        created_at=datetime.now(UTC),
        started_at=None,
        finished_at=None,
        webhook_url="https://x",
        meta={"k": "v"},
    )
    return JobRecord(**{**fields, **kw})


def test_event_payload_is_thin_and_carries_small_results():
    at = datetime(2025, 1, 1, tzinfo=UTC)
    small = json.loads(
        event_body(_job(), JobStatus.succeeded, result={"message": "hi"}, error=None, max_inline_bytes=1000, at=at)
    )
    assert small["type"] == "job.succeeded" and small["timestamp"] == "2025-01-01T00:00:00+00:00"
    assert small["data"]["id"] == "j1" and small["data"]["status"] == "succeeded"
    assert small["data"]["result"] == {"message": "hi"} and small["data"]["metadata"] == {"k": "v"}
    big = json.loads(
        event_body(
            _job(), JobStatus.succeeded, result={"message": "x" * 2000}, error=None, max_inline_bytes=1000, at=at
        )
    )
    assert "result" not in big["data"] and big["data"]["result_included"] is False
    assert big["data"]["links"]["self"] == "/v2/jobs/j1"
    failed = json.loads(
        event_body(
            _job(),
            JobStatus.failed,
            result=None,
            error={"type": "T", "message": "m", "detail": "d", "status_code": 502},
            max_inline_bytes=1000,
            at=at,
        )
    )
    assert failed["type"] == "job.failed" and failed["data"]["error"] == {"type": "T", "message": "m", "detail": "d"}


def test_the_readme_verification_helper_accepts_our_signatures():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = next(b for b in readme.split("```python")[1:] if "def verify_webhook" in b).split("```")[0]
    namespace: dict = {}
    exec(block, namespace)  # noqa: S102 - our own documentation
    verify = namespace["verify_webhook"]
    new, old = generate_secret(), generate_secret()
    headers = webhook_headers("msg_1", BODY, [new, old])
    assert verify(BODY.encode(), headers, old) == json.loads(BODY)
    with pytest.raises(ValueError):
        verify(BODY.encode(), headers, generate_secret())
    with pytest.raises(ValueError):
        stale = webhook_headers("msg_1", BODY, [new], now=datetime.now(UTC) - timedelta(minutes=10))
        verify(BODY.encode(), stale, new)
