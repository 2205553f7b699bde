"""Signed webhooks received by a real HTTP server: verification, secrets stored encrypted, retries, 410,
Retry-After, redelivery, and exactly one result after a worker is killed mid-job."""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import select
from standardwebhooks.webhooks import Webhook

from app.secrets import SecretBox
from app.services.webhooks import generate_secret
from app.store.tables import Job, JobStatus, Span
from tests.helpers import eventually
from tests.stack import start_stack

SCHEMA = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
SECRET_KEY = "webhook-tests-" + uuid.uuid4().hex
RETRIES = "0.3,0.3,0.3"  # CONVEYOR_WEBHOOK_RETRY_SCHEDULE for these tests: 4 attempts in about a second


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: str
    at: float


@dataclass
class Receiver:
    """A webhook receiver whose answers are scripted by path: `/ok`, `/fail/2` (two 500s, then 200),
    `/gone` (410), `/always/500`, `/retry-after/1` (503 + Retry-After: 1, then 200), `/slow` (too slow, then 200)."""

    requests: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["content-length"])).decode()
                with receiver.lock:
                    receiver.requests.append(
                        Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body, time.monotonic())
                    )
                    seen = sum(1 for r in receiver.requests if r.path == self.path)
                status, headers = receiver.answer(self.path, seen)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @staticmethod
    def answer(path: str, seen: int) -> tuple[int, dict[str, str]]:
        parts = path.strip("/").split("/")
        if parts[0] == "fail" and seen <= int(parts[1]):
            return 500, {}
        if parts[0] == "gone":
            return 410, {}
        if parts[0] == "always":
            return int(parts[1]), {}
        if parts[0] == "retry-after" and seen == 1:
            return 503, {"Retry-After": parts[1]}
        if parts[0] == "slow" and seen == 1:
            time.sleep(1.5)  # CONVEYOR_WEBHOOK_TIMEOUT=1
        return 200, {}

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/{path.strip('/')}/{uuid.uuid4().hex[:8]}"

    def received(self, url: str) -> list[Received]:
        path = url.split(str(self.server.server_port), 1)[1]
        with self.lock:
            return [r for r in self.requests if r.path == path]

    def wait_for(self, url: str, count: int, timeout: float = 10) -> list[Received]:
        eventually(lambda: len(self.received(url)) >= count, timeout, what=f"{count} webhook requests at {url}")
        return self.received(url)


@pytest.fixture(scope="module")
def receiver():
    running = Receiver()
    yield running
    running.server.shutdown()


WEBHOOK_SETTINGS = {
    "CONVEYOR_ALLOW_PRIVATE_WEBHOOKS": "true",
    "CONVEYOR_WEBHOOK_RETRY_SCHEDULE": RETRIES,
    "CONVEYOR_WEBHOOK_POLL_INTERVAL": "0.1",
    "CONVEYOR_WEBHOOK_TIMEOUT": "1",
    "CONVEYOR_SECRET_KEY": SECRET_KEY,  # signing secrets are stored encrypted with it
}


@pytest.fixture(scope="module")
def stack(fake_provider):
    running = start_stack(fake_provider.url, **WEBHOOK_SETTINGS)
    yield running
    running.stop()


def submit(client, url: str, secret: str | list[str] | None = None, **body) -> dict:
    webhook = {"url": url} if secret is None else {"url": url, "secret": secret}
    payload = {"name": "hooked", "input": "x", "output_schema": SCHEMA, "webhook": webhook, **body}
    response = client.post("/jobs", json=payload)
    assert response.status_code == 202, response.text
    return response.json()


def deliveries(client, job_id: str, *, settled: bool = True, timeout: float = 10) -> list[dict]:
    """The job's deliveries, once every one of them has stopped changing (when `settled`)."""

    def check() -> list[dict] | None:
        found = client.get(f"/jobs/{job_id}/deliveries").json()["data"]
        if found and (not settled or all(d["status"] not in ("pending", "sending") for d in found)):
            return found
        return None

    return eventually(check, timeout, what=f"job {job_id}'s deliveries settled")


def test_a_signed_webhook_carries_the_result(stack, client, receiver):
    secret = generate_secret()
    url = receiver.url("ok")
    job = submit(client, url, secret, metadata={"order": 42})
    assert job["webhook"] == {"url": url, "secret": None}  # a secret you gave is not echoed

    (request,) = receiver.wait_for(url, 1)
    payload = Webhook(secret).verify(request.body, request.headers)  # the reference implementation
    stored = client.get(f"/jobs/{job['id']}").json()
    with stack.db.transaction() as session:  # at rest, the secret is a token of CONVEYOR_SECRET_KEY
        (sealed,) = session.scalar(select(Job.webhook_secrets).where(Job.id == job["id"]))
    assert secret not in sealed and SecretBox(SECRET_KEY).decrypt(sealed) == secret
    assert payload["type"] == "job.succeeded"
    assert payload["data"]["id"] == job["id"] and payload["data"]["status"] == "succeeded"
    assert payload["data"]["result"] == stored["result"] and payload["data"]["metadata"] == {"order": 42}
    assert request.headers["webhook-id"] == f"msg_{job['id']}"
    assert request.headers["content-type"] == "application/json"

    (delivery,) = deliveries(client, job["id"])
    assert delivery["status"] == "succeeded" and delivery["event_type"] == "job.succeeded"
    assert [(a["number"], a["status_code"], a["succeeded"]) for a in delivery["attempts"]] == [(1, 200, True)]


def test_a_generated_secret_is_shown_once_and_rotation_signs_with_each(client, receiver):
    url = receiver.url("ok")
    job = submit(client, url)
    generated = job["webhook"]["secret"]
    assert generated.startswith("whsec_")
    assert client.get(f"/jobs/{job['id']}").json()["webhook"] == {"url": url, "secret": None}
    (request,) = receiver.wait_for(url, 1)
    Webhook(generated).verify(request.body, request.headers)

    new, old = generate_secret(), generate_secret()
    url = receiver.url("ok")
    submit(client, url, [new, old])
    (request,) = receiver.wait_for(url, 1)
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    Webhook(new).verify(request.body, request.headers)
    Webhook(old).verify(request.body, request.headers)


def test_a_receiver_failing_twice_gets_three_attempts_of_one_message(client, receiver):
    url = receiver.url("fail/2")
    job = submit(client, url, generate_secret())

    first, second, third = receiver.wait_for(url, 3)
    assert len({r.headers["webhook-id"] for r in (first, second, third)}) == 1  # stable across retries
    assert first.body == second.body == third.body
    assert second.at - first.at >= 0.25 and third.at - second.at >= 0.25  # the schedule, with jitter
    (delivery,) = deliveries(client, job["id"])
    assert delivery["status"] == "succeeded" and delivery["attempt_count"] == 3
    assert [(a["status_code"], a["succeeded"]) for a in delivery["attempts"]] == [
        (500, False),
        (500, False),
        (200, True),
    ]
    assert delivery["attempts"][0]["error"] == "the receiver answered 500"
    assert delivery["attempts"][0]["next_attempt_at"] is not None
    assert delivery["attempts"][-1]["next_attempt_at"] is None  # nothing planned after the success
    assert len(receiver.received(url)) == 3


def test_410_stops_retries(client, receiver):
    url = receiver.url("gone")
    job = submit(client, url)
    (delivery,) = deliveries(client, job["id"])
    assert delivery["status"] == "gone" and delivery["attempts"][0]["status_code"] == 410
    assert delivery["attempt_count"] == 1 and delivery["attempts"][0]["next_attempt_at"] is None  # no retry planned
    assert len(receiver.received(url)) == 1


def test_retries_run_out_and_the_job_is_untouched(client, receiver):
    url = receiver.url("always/500")
    job = submit(client, url)
    (delivery,) = deliveries(client, job["id"])
    assert delivery["status"] == "failed" and delivery["attempt_count"] == 4  # 1 + len(schedule)
    assert len(receiver.received(url)) == 4
    assert client.get(f"/jobs/{job['id']}").json()["status"] == "succeeded"  # delivery never fails the job

    unreachable = submit(client, "http://127.0.0.1:9/nothing-listens-here")
    (delivery,) = deliveries(client, unreachable["id"])
    assert delivery["status"] == "failed" and "ConnectError" in delivery["attempts"][0]["error"]
    assert client.get(f"/jobs/{unreachable['id']}").json()["status"] == "succeeded"


def test_retry_after_and_the_timeout_are_honoured(client, receiver):
    url = receiver.url("retry-after/1")
    submit(client, url)
    first, second = receiver.wait_for(url, 2)
    assert second.at - first.at >= 0.95  # not the 0.3 s of the schedule

    url = receiver.url("slow")
    job = submit(client, url)
    receiver.wait_for(url, 2)
    (delivery,) = deliveries(client, job["id"])
    assert [a["succeeded"] for a in delivery["attempts"]] == [False, True]
    assert delivery["attempts"][0]["error"] == "the receiver did not answer in time"


def test_redelivery_sends_the_same_message_again(client, receiver):
    url = receiver.url("ok")
    job = submit(client, url)
    receiver.wait_for(url, 1)
    (delivery,) = deliveries(client, job["id"])
    again = client.post(f"/jobs/{job['id']}/deliveries/{delivery['id']}/redeliver")
    assert again.status_code == 202 and again.json()["id"] == delivery["id"]
    first, second = receiver.wait_for(url, 2)
    assert first.body == second.body and first.headers["webhook-id"] == second.headers["webhook-id"]
    (delivery,) = deliveries(client, job["id"])
    assert delivery["attempt_count"] == 2 and delivery["status"] == "succeeded"
    missing = client.post(f"/jobs/{job['id']}/deliveries/{uuid.uuid4()}/redeliver")
    assert missing.status_code == 404


def test_failed_and_cancelled_jobs_are_delivered_too(client, receiver):
    url = receiver.url("ok")
    submit(client, url, model="fake/x?fail=400")
    (request,) = receiver.wait_for(url, 1)
    payload = json.loads(request.body)
    assert payload["type"] == "job.failed" and payload["data"]["error"]["type"] == "TaskFailedError"

    url = receiver.url("ok")
    job = submit(client, url, model=f"fake/x?latency_ms=5000&run={uuid.uuid4().hex[:6]}")
    assert client.post(f"/jobs/{job['id']}/cancel").status_code == 200
    (request,) = receiver.wait_for(url, 1)
    payload = json.loads(request.body)
    assert payload["type"] == "job.cancelled" and payload["data"]["error"]["type"] == "JobCancelled"


@pytest.fixture
def crash_stack(fake_provider):
    stack = start_stack(
        fake_provider.url,
        workers=0,
        CONVEYOR_JOB_LEASE_SECONDS="2",
        CONVEYOR_SWEEP_INTERVAL="0.5",
        **WEBHOOK_SETTINGS,
    )
    yield stack
    stack.stop()


def test_a_worker_killed_mid_job_gives_one_result_one_bill_one_webhook(crash_stack, fake_provider, receiver):
    stack = crash_stack
    doomed = stack.start_worker()
    model = f"fake/slow?latency_ms=3000&run={uuid.uuid4().hex[:8]}"
    secret = generate_secret()
    url = receiver.url("ok")
    with stack.client(stack.new_key()) as client:
        job = submit(client, url, secret, model=model)
        eventually(lambda: fake_provider.requests_for(model), 15, what="the doomed worker's call at the provider")
        stack.kill_worker(doomed)
        stack.start_worker()
        done = client.get(f"/jobs/{job['id']}", params={"wait": 30}).json()
        assert done["status"] == "succeeded" and done["attempts"] == 2
        (delivery,) = deliveries(client, job["id"])  # one delivery: the job ended once
        assert delivery["status"] == "succeeded" and delivery["attempt_count"] == 1
        (request,) = receiver.received(url)  # one message, and no second one
        payload = Webhook(secret).verify(request.body, request.headers)
        assert payload["data"]["result"] == done["result"]
    assert fake_provider.requests_for(model) == 2  # the abandoned request, then the one that finished
    with stack.db.transaction() as session:
        row = session.get(Job, job["id"])
        spans = session.scalars(select(Span).where(Span.job_id == job["id"])).all()
    assert row.status == JobStatus.succeeded and row.result == done["result"]
    assert sorted(s.type for s in spans) == ["call", "generation"]  # billed once
