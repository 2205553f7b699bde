"""The API SIGKILLed mid-stream of keyed submissions (issue 15): the client sends each input again with the
same Idempotency-Key until it is accepted, on the restarted API. Every key ends as exactly one job, run
once and billed once, and the worker keeps consuming.

A request killed between reserving its key and writing its job leaves a reservation with no job: a retry
gets 409 until the reservation counts as abandoned (CONVEYOR_IDEMPOTENCY_RESERVATION_SECONDS, 60 s by
default, 3 s in the fault suite), then takes the key over. A job written but not enqueued (killed in between) is
enqueued by the retry that replays it."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx
import pytest

from tests.faults.load import Ledger, project_job_ids, wait_until_final

pytestmark = pytest.mark.faults

KEYS = 120
LATENCY_MS = 200
BOUND_SECONDS = 30  # from the API's restart until every key's job has ended
RETRY_PAUSE = 0.1


@dataclass
class KeyedClient:
    """Sends input n with the key `{run}-{n}` to whichever API `url()` names, until a 202; a connection
    error, a 503 (nothing accepted) or a 409 (the key's first request in progress, or dead) is retried."""

    url: Callable[[], str]
    key: str
    model: str
    run: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    jobs: dict[int, set[str]] = field(default_factory=dict)  # input -> every job id an answer named
    retried: Counter = field(default_factory=Counter)
    unexpected: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def send(self, http: httpx.Client, number: int, deadline: float) -> None:
        body = {"name": "keyed", "input": f"item {number}", "model": self.model}
        headers = {"Authorization": f"Bearer {self.key}", "Idempotency-Key": f"{self.run}-{number}"}
        while time.monotonic() < deadline:
            try:
                response = http.post(self.url() + "/v2/jobs", json=body, headers=headers, timeout=10)
            except httpx.TransportError as exc:
                reason = type(exc).__name__
            else:
                if response.status_code == 202:
                    with self._lock:
                        self.jobs.setdefault(number, set()).add(response.json()["id"])
                    return
                if response.status_code not in (409, 503):
                    with self._lock:
                        self.unexpected.append(f"item {number}: {response.status_code} {response.text[:300]}")
                    return
                reason = str(response.status_code)
            with self._lock:
                self.retried[reason] += 1
            time.sleep(RETRY_PAUSE)
        with self._lock:
            self.unexpected.append(f"item {number}: never accepted")

    def send_all(self, numbers: range, threads: int = 8, within: float = 90.0) -> None:
        deadline = time.monotonic() + within

        def send_share(share: range) -> None:
            with httpx.Client() as http:  # kept-alive connections, as a client's pool
                for number in share:
                    self.send(http, number, deadline)

        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(send_share, [numbers[i::threads] for i in range(threads)]))


def test_api_sigkill_during_keyed_submissions(fault_stack, fake_provider):
    stack = fault_stack
    (worker,) = stack.workers
    project_id, key = stack.new_project()
    model = f"fake/api-kill?latency_ms={LATENCY_MS}&run={uuid.uuid4().hex[:8]}"
    client = KeyedClient(lambda: stack.api_url, key, model)

    sending = threading.Thread(target=client.send_all, args=(range(KEYS),), daemon=True)
    sending.start()
    deadline = time.monotonic() + 30
    while len(client.jobs) < KEYS // 3:
        assert time.monotonic() < deadline, "the API accepted too few submissions"
        time.sleep(0.01)
    stack.kill(stack.api)
    accepted_before = len(client.jobs)
    stack.start_api()  # on a new port: the client follows `stack.api_url`, as a load balancer would
    stack.wait_ready()
    restarted = time.monotonic()
    sending.join()

    assert client.unexpected == []
    assert sorted(client.jobs) == list(range(KEYS))
    assert all(len(ids) == 1 for ids in client.jobs.values()), "a key named two jobs"
    accepted = sorted(ids.pop() for ids in client.jobs.values())
    assert len(set(accepted)) == KEYS
    assert sorted(project_job_ids(stack.db, project_id)) == accepted  # no job beside its key's
    wait_until_final(stack.db, accepted, within=BOUND_SECONDS - (time.monotonic() - restarted))
    print(f"API SIGKILL after {accepted_before} of {KEYS} keys accepted; retries {dict(client.retried)}")

    ledger = Ledger.read(stack.db, accepted)
    assert ledger.problems() == []  # ended once, one result, billed once
    assert fake_provider.requests_for(model) == KEYS  # each input ran once

    assert worker.poll() is None
    response = httpx.post(
        stack.api_url + "/v2/call",
        json={"name": "after", "input": "x", "model": model},
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    assert fake_provider.requests_for(model) == KEYS + 1
