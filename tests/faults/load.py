"""Load for the fault suite, and the exactly-once ledger it is checked against.

`Submitter` sends numbered job submissions (`POST /v2/jobs`) from a few threads, as a careful client
would: a 503 says nothing was run, so it is sent again until accepted. Any other answer is recorded
and fails the test. `Ledger` reads the database afterwards: each accepted job ended once, with one
result, one call span and one generation span (the one billed attempt)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx
from sqlalchemy import select

from app.store.db import Database
from app.store.tables import Job, JobStatus, Span

OPEN = (JobStatus.queued, JobStatus.running)
RETRY_PAUSE = 0.2  # between a refused submission and its retry, as a client's backoff


@dataclass
class Submitter:
    api_url: str
    key: str
    model: str
    accepted: dict[int, str] = field(default_factory=dict)  # input number -> job id
    refusals: Counter = field(default_factory=Counter)  # status (or exception name) -> count
    unexpected: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def body(self, number: int) -> dict:
        return {"name": "fault", "input": f"item {number}", "model": self.model}

    def submit(self, number: int, deadline: float) -> None:
        with httpx.Client(
            base_url=self.api_url + "/v2", headers={"Authorization": f"Bearer {self.key}"}, timeout=30
        ) as client:
            while time.monotonic() < deadline:
                try:
                    response = client.post("/jobs", json=self.body(number))
                except httpx.TransportError as exc:
                    # Without an Idempotency-Key an unanswered request cannot be retried safely: record it.
                    with self._lock:
                        self.unexpected.append(f"item {number}: {exc!r}")
                    return
                if response.status_code == 202:
                    with self._lock:
                        self.accepted[number] = response.json()["id"]
                    return
                with self._lock:
                    self.refusals[response.status_code] += 1
                if response.status_code != 503:
                    with self._lock:
                        self.unexpected.append(f"item {number}: {response.status_code} {response.text[:300]}")
                    return
                time.sleep(RETRY_PAUSE)
            with self._lock:
                self.unexpected.append(f"item {number}: never accepted")

    def submit_all(self, numbers: range, *, threads: int = 8, within: float = 60.0) -> None:
        deadline = time.monotonic() + within
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(lambda n: self.submit(n, deadline), numbers))

    def start(self, numbers: range, **kwargs: float) -> threading.Thread:
        thread = threading.Thread(target=self.submit_all, args=(numbers,), kwargs=kwargs, daemon=True)
        thread.start()
        return thread


@dataclass(frozen=True)
class Ledger:
    jobs: list[Job]
    spans_by_job: dict[str, Counter]
    generation_cost: dict[str, float]

    @classmethod
    def read(cls, db: Database, project_jobs: list[str]) -> Ledger:
        with db.transaction() as session:
            jobs = list(session.scalars(select(Job).where(Job.id.in_(project_jobs))).all())
            spans = session.scalars(select(Span).where(Span.job_id.in_(project_jobs))).all()
            session.expunge_all()
        by_job: dict[str, Counter] = {}
        cost: dict[str, float] = {}
        for span in spans:
            by_job.setdefault(span.job_id, Counter())[span.type] += 1
            if span.type == "generation":
                cost[span.job_id] = cost.get(span.job_id, 0.0) + (span.cost_generation or 0.0)
        return cls(jobs, by_job, cost)

    def problems(self) -> list[str]:
        """Every way an accepted job did not end exactly once (empty when all did)."""
        found = []
        for job in self.jobs:
            spans = self.spans_by_job.get(job.id, Counter())
            if job.status is not JobStatus.succeeded or job.result is None:
                found.append(f"{job.id}: {job.status} {job.error}")
            elif spans != Counter({"call": 1, "generation": 1}):
                found.append(f"{job.id}: spans {dict(spans)}")
            elif not self.generation_cost.get(job.id, 0.0) > 0:
                found.append(f"{job.id}: not billed")
            elif job.result.get("cost", {}).get("generation") != self.generation_cost[job.id]:
                found.append(
                    f"{job.id}: result's cost {job.result.get('cost')} != billed {self.generation_cost[job.id]}"
                )
        return found


def project_job_ids(db: Database, project_id: str) -> list[str]:
    with db.transaction() as session:
        return list(session.scalars(select(Job.id).where(Job.project_id == project_id)).all())


def wait_until_final(db: Database, job_ids: list[str], within: float) -> float:
    """Seconds until every job is final; fails the test when `within` runs out first."""
    started = time.monotonic()
    while True:
        with db.transaction() as session:
            open_jobs = session.execute(
                select(Job.id, Job.status, Job.delivery_attempts, Job.lease_expires_at).where(
                    Job.id.in_(job_ids), Job.status.in_(OPEN)
                )
            ).all()
        if not open_jobs:
            return time.monotonic() - started
        assert time.monotonic() - started < within, f"{len(open_jobs)} jobs open after {within:g} s: {open_jobs[:5]}"
        time.sleep(0.2)


@dataclass
class WaitingCalls:
    """`POST /v2/call`s that wait for their results across a fault (sent before it, answered after)."""

    api_url: str
    key: str
    model: str
    responses: list[httpx.Response | Exception] = field(default_factory=list)
    threads: list[threading.Thread] = field(default_factory=list)

    def _call(self, number: int) -> None:
        body = {"name": "waiting", "input": f"waiting {number}", "model": self.model}
        try:
            with httpx.Client(base_url=self.api_url + "/v2", headers={"Authorization": f"Bearer {self.key}"}) as client:
                self.responses.append(client.post("/call", json=body, timeout=120))
        except Exception as exc:  # noqa: BLE001 - recorded, and fails the test
            self.responses.append(exc)

    def start(self, count: int) -> None:
        for number in range(count):
            thread = threading.Thread(target=self._call, args=(number,), daemon=True)
            thread.start()
            self.threads.append(thread)

    def join(self) -> list[httpx.Response | Exception]:
        for thread in self.threads:
            thread.join(timeout=120)
        return self.responses
