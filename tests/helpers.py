"""What tests on a real stack share: waiting for stored state (`eventually`), names of their own
(`unique`, `run_label`), and submitting batches and jobs and waiting for them to end.

Waits poll the state a test is about (a row, a counter, a received request) until it holds; none
of them stands in for a sleep-then-look. A wait that runs out fails with the last value seen.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

import httpx

T = TypeVar("T")

POLL_SECONDS = 0.05
BATCH_ENDED = ("completed", "cancelled", "failed")
JOB_ENDED = ("succeeded", "failed", "cancelled")


def eventually(check: Callable[[], T], timeout: float = 30, *, what: str = "", poll: float = POLL_SECONDS) -> T:
    """Call `check` until it returns something truthy, and return that; fail after `timeout` seconds
    with `what` (the condition waited for) and the last value seen."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"not within {timeout} s: {what or check!r} (last: {value!r})"
        time.sleep(poll)


def jobs_held_by_workers(redis_url: str, workers: int = 1) -> set[str]:
    """The job ids whose messages the workers hold, delivered and not yet acknowledged (running,
        reserved, or waiting for their countdown), as `celery inspect` reports them: a job's message has
        no copy in Redis while a worker holds it (workers/broker.py). The replies of `workers` workers are
    awaited, and no longer (at most a second)."""
    from celery import Celery

    app = Celery("conveyor-tests", broker=redis_url, set_as_current=False)
    try:
        inspect = app.control.inspect(timeout=1.0, limit=workers)
        replies = [inspect.active() or {}, inspect.reserved() or {}, inspect.scheduled() or {}]
    finally:
        app.close()
    held = set()
    for reply in replies:
        for tasks in reply.values():
            for task in tasks:
                request = task.get("request", task)  # `scheduled` wraps the request with its ETA
                held.update(str(arg) for arg in request.get("args") or [])
    return held


def run_label() -> str:
    """A short random label: names, projects and fake-provider models of a test's own."""
    return uuid.uuid4().hex[:8]


def unique(model: str) -> str:
    """A fake-provider model string of this test's own: its request counts and fail_times tallies are
    this test's alone (the fake keys them by the whole model string)."""
    return f"{model}{'&' if '?' in model else '?'}run={run_label()}"


class Receiver:
    """A webhook endpoint on a free port (`url`) that answers 200 and keeps what it received, as
    (lower-cased headers, body) pairs in `received`."""

    def __init__(self) -> None:
        self.received: list[tuple[dict, bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["content-length"]))
                receiver.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


# --- batches ---------------------------------------------------------------------------------------


def submit_batch(client: httpx.Client, function: dict[str, Any], count: int, **extra: Any) -> dict:
    """POST /batches with `count` items `item-0`... (input `question i`); returns the accepted batch."""
    items = [{"custom_id": f"item-{i}", "input": f"question {i}"} for i in range(count)]
    response = client.post("/batches", json={"function": function, "items": items, **extra})
    assert response.status_code == 202, response.text
    return response.json()


def wait_for_batch(
    client: httpx.Client, batch_id: str, done: Callable[[dict], bool] | None = None, timeout: float = 60
) -> dict:
    """The batch as GET /batches/{id} shows it once `done(batch)` holds (default: it has ended)."""
    done = done or (lambda batch: batch["status"] in BATCH_ENDED)
    last: dict = {}

    def check() -> dict | None:
        nonlocal last
        last = client.get(f"/batches/{batch_id}").json()
        return last if done(last) else None

    try:
        return eventually(check, timeout, what=f"batch {batch_id}", poll=0.1)
    except AssertionError:
        shown = {key: last.get(key) for key in ("status", "counts", "provider_batches")}
        raise AssertionError(f"batch {batch_id} not done within {timeout} s: {shown}") from None


def batch_results(client: httpx.Client, batch_id: str, **params: Any) -> list[dict]:
    """GET /batches/{id}/results as parsed lines."""
    response = client.get(f"/batches/{batch_id}/results", params=params)
    assert response.status_code == 200, response.text
    return [json.loads(line) for line in response.text.splitlines()]


# --- jobs ------------------------------------------------------------------------------------------


def wait_for_job(client: httpx.Client, job_id: str, timeout: float = 30) -> dict:
    """The job once it has ended, polled through GET /jobs/{id}."""

    def check() -> dict | None:
        job = client.get(f"/jobs/{job_id}").json()
        return job if job["status"] in JOB_ENDED else None

    return eventually(check, timeout, what=f"job {job_id} to end")


def submit_job_and_wait(client: httpx.Client, body: dict[str, Any], timeout: float = 30) -> dict:
    """POST /jobs, then the job once it has ended."""
    response = client.post("/jobs", json=body)
    assert response.status_code == 202, response.text
    return wait_for_job(client, response.json()["id"], timeout)
