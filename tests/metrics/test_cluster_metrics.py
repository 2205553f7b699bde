"""`GET /metrics` on a real stack: calls that succeed, fail, are cancelled, send a webhook or run as a
batch move the cluster's counters by exactly what happened; gauges read the queues, the database and
the workers; a second worker's counts show in the API's scrape; the token guards the endpoint."""

from __future__ import annotations

import json
import re
import time
import uuid

import httpx
import pytest
import redis

from app.embedded import free_port
from app.metrics.worker import SEND_SECONDS
from app.store import keys
from tests.metrics.scrape import TOKEN, Scrape, scrape, scrape_until
from tests.stack import ROOT, start_stack
from tests.workers.test_webhooks import Receiver

MODEL = "openai/gpt-4o-mini"  # priced and configured: its own label (the fake provider serves it)
LIMITED = "openai/gpt-4o"
SCHEMA = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}
FINISHED = "conveyor_jobs_finished_total"
SUBMITTED = "conveyor_jobs_submitted_total"
INTERACTIVE, BATCH = "conveyor.interactive", "conveyor.batch"
SENT_WITHIN = SEND_SECONDS * 2  # a worker's counts reach Redis within this long


@pytest.fixture(scope="module")
def stack(fake_provider):
    running = start_stack(
        fake_provider.url,
        workers=0,
        CONVEYOR_METRICS_TOKEN=TOKEN,
        CONVEYOR_WORKER_METRICS_PORT=str(free_port()),
        CONVEYOR_RATE_LIMITS=json.dumps({LIMITED: {"rpm": 100000}}),
        CONVEYOR_ALLOW_PRIVATE_WEBHOOKS="true",
        CONVEYOR_WEBHOOK_RETRY_SCHEDULE="0.2,0.2",
        CONVEYOR_WEBHOOK_POLL_INTERVAL="0.1",
        CONVEYOR_PROVIDER_BATCH_POLL_SECONDS="0.2",
    )
    running.start_worker()
    yield running
    running.stop()


@pytest.fixture
def client(stack):
    with stack.client(stack.new_key()) as http:
        yield http


def settled(now: Scrape) -> bool:
    """Every job submitted so far has its ending counted, and none is running: what earlier tests' jobs
    counted has reached Redis (a worker counts an ending's attempts, tokens, cost and waits with it)."""
    submitted = sum(now.value(SUBMITTED, queue=queue) for queue in (INTERACTIVE, BATCH))
    finished = sum(now.value(FINISHED, status=status) for status in ("succeeded", "failed", "cancelled"))
    return submitted == finished and now.value("conveyor_jobs_in_progress") == 0


def quiet(url: str) -> Scrape:
    """The baseline of a delta: a scrape once earlier tests' counts have settled (at once when the test
    before waited for its own; a worker sends its counts about once a second)."""
    now = scrape_until(url, settled)
    assert settled(now), "earlier tests' jobs never all counted as ended"
    return now


def ended(now: Scrape, before: Scrape) -> float:
    """Jobs that ended in a worker between two scrapes (a worker sends its counts about once a second)."""
    return sum(now.minus(before, FINISHED, status=status) for status in ("succeeded", "failed"))


def call(client, model: str = MODEL, **extra) -> httpx.Response:
    body = {"name": f"m-{uuid.uuid4().hex[:6]}", "input": "x", "output_schema": SCHEMA, "model": model, **extra}
    return client.post("/call", json=body)


def test_a_success_and_a_failure_move_the_counters_by_exactly_one(stack, client):
    before = quiet(stack.url)
    ok = call(client)
    assert ok.status_code == 200, ok.text
    failed = call(client, model=f"{MODEL}?fail=400")  # a 400 is not retried: one attempt, then no fallback
    assert failed.status_code >= 400
    after = scrape_until(stack.url, lambda now: ended(now, before) >= 2)

    assert after.minus(before, SUBMITTED, queue=INTERACTIVE) == 2
    assert after.minus(before, FINISHED, status="succeeded") == 1
    assert after.minus(before, FINISHED, status="failed") == 1
    assert after.minus(before, "conveyor_model_attempts_total", model=MODEL, outcome="success") == 1
    assert after.minus(before, "conveyor_model_attempts_total", model=MODEL, outcome="error") == 1
    usage, cost = ok.json()["usage"], ok.json()["cost"]["total"]
    assert after.minus(before, "conveyor_tokens_total", model=MODEL, type="input") == usage["input_tokens"] > 0
    assert after.minus(before, "conveyor_tokens_total", model=MODEL, type="output") == usage["output_tokens"] > 0
    assert after.minus(before, "conveyor_cost_usd_total", model=MODEL) == pytest.approx(cost) and cost > 0
    for histogram in ("conveyor_job_queue_wait_seconds", "conveyor_call_duration_seconds"):
        assert after.minus(before, f"{histogram}_count", queue=INTERACTIVE) == 2
        assert after.minus(before, f"{histogram}_bucket", queue=INTERACTIVE, le="+Inf") == 2
        assert after.types[histogram] == "histogram"
    assert after.minus(before, "conveyor_call_duration_seconds_sum", queue=INTERACTIVE) > 0


def test_an_unknown_model_name_is_counted_under_its_provider_not_as_itself(stack, client):
    before = quiet(stack.url)
    name = f"openai/made-up-{uuid.uuid4().hex[:6]}"
    assert call(client, model=name).status_code == 200
    after = scrape_until(stack.url, lambda now: ended(now, before) >= 1)
    assert after.minus(before, "conveyor_model_attempts_total", model="openai/other", outcome="success") == 1
    assert name not in after.text


def test_a_cancelled_job_counts_as_cancelled_once(stack, client):
    before = quiet(stack.url)
    job = client.post("/jobs", json={"name": "slow", "input": "x", "model": f"{MODEL}?latency_ms=5000"}).json()
    assert client.post(f"/jobs/{job['id']}/cancel").json()["status"] == "cancelled"
    time.sleep(SENT_WITHIN)  # a worker that had claimed it abandons it and writes (and counts) nothing
    after = scrape(stack.url)
    assert after.minus(before, FINISHED, status="cancelled") == 1
    assert after.minus(before, FINISHED, status="succeeded") == after.minus(before, FINISHED, status="failed") == 0


def test_webhook_attempts_are_counted_by_outcome(stack, client):
    receiver = Receiver()
    try:
        before = quiet(stack.url)
        webhook = {"url": receiver.url("fail/1")}  # a 500, then a 200 on the retry
        assert client.post("/jobs", json={"name": "hooked", "input": "x", "webhook": webhook}).status_code == 202
        name = "conveyor_webhook_deliveries_total"
        after = scrape_until(stack.url, lambda now: now.minus(before, name, outcome="succeeded") >= 1)
        assert after.minus(before, name, outcome="retrying") == 1
        assert after.minus(before, name, outcome="succeeded") == 1
        assert after.minus(before, name, outcome="failed") == 0
    finally:
        receiver.server.shutdown()


def test_a_batch_counts_its_items_and_shows_in_progress(stack, client):
    before = quiet(stack.url)
    items = [{"custom_id": f"i{i}", "input": f"q{i}"} for i in range(5)]
    spec = {"function": {"name": f"b-{uuid.uuid4().hex[:6]}", "model": f"{MODEL}?latency_ms=300"}, "items": items}
    batch = client.post("/batches", json=spec)
    assert batch.status_code == 202, batch.text
    during = scrape(stack.url)
    assert during.minus(before, SUBMITTED, queue=BATCH) == 5
    assert during.value("conveyor_batches_in_progress") == 1

    after = scrape_until(stack.url, lambda now: now.minus(before, FINISHED, status="succeeded") >= 5)
    assert after.minus(before, FINISHED, status="succeeded") == 5
    assert after.minus(before, "conveyor_job_queue_wait_seconds_count", queue=BATCH) == 5
    ended = scrape_until(stack.url, lambda now: now.value("conveyor_batches_in_progress") == 0)
    assert ended.value("conveyor_batches_in_progress") == 0


def test_items_a_provider_batch_answers_are_counted_too(stack, client):
    before = quiet(stack.url)
    items = [{"custom_id": f"i{i}", "input": f"q{i}"} for i in range(3)]
    model = f"fake/pb?run={uuid.uuid4().hex[:8]}"  # the fake answers batch APIs; `fake/other` as a label
    function = {"name": f"p-{uuid.uuid4().hex[:6]}", "model": model, "output_schema": SCHEMA}
    batch = client.post("/batches", json={"function": function, "items": items, "execution": "provider"}).json()
    assert batch["execution"] == "provider", batch
    after = scrape_until(stack.url, lambda now: ended(now, before) >= 3, timeout=60)
    assert after.minus(before, SUBMITTED, queue=BATCH) == 3
    assert after.minus(before, FINISHED, status="succeeded") == 3
    assert after.minus(before, "conveyor_model_attempts_total", model="fake/other", outcome="success") == 3


def test_a_cancelled_batch_counts_each_item_not_ended(stack, client):
    before = quiet(stack.url)
    items = [{"custom_id": f"i{i}", "input": f"q{i}"} for i in range(4)]
    spec = {"function": {"name": f"c-{uuid.uuid4().hex[:6]}", "model": f"{MODEL}?latency_ms=5000"}, "items": items}
    batch = client.post("/batches", json=spec).json()
    assert client.post(f"/batches/{batch['id']}/cancel").status_code == 200
    after = scrape(stack.url)
    assert after.minus(before, FINISHED, status="cancelled") == 4


def test_jobs_in_progress_and_workers_are_read_at_scrape_time(stack, client):
    job = client.post("/jobs", json={"name": "held", "input": "x", "model": f"{MODEL}?latency_ms=3000"}).json()
    running = scrape_until(stack.url, lambda now: now.value("conveyor_jobs_in_progress") >= 1)
    assert running.value("conveyor_jobs_in_progress") == 1
    assert running.value("conveyor_workers") == 1
    client.post(f"/jobs/{job['id']}/cancel")
    assert scrape(stack.url).value("conveyor_jobs_in_progress") == 0


def test_a_killed_workers_presence_lapses_within_seconds_not_a_day(stack):
    broker = redis.Redis.from_url(stack.settings.redis_url)
    present = broker.keys(keys.WORKER_PRESENCE_PATTERN)
    assert present
    for key in present:
        assert 0 < broker.pttl(key) <= 30_000  # refreshed while the worker lives; lapses once it is killed


def test_queue_depth_counts_messages_no_worker_has_taken(fake_provider):
    idle = start_stack(fake_provider.url, workers=0, CONVEYOR_METRICS_TOKEN=TOKEN)
    try:
        with idle.client(idle.new_key()) as client:
            for _ in range(3):
                assert client.post("/jobs", json={"name": "wait", "input": "x"}).status_code == 202
        now = scrape(idle.url)
        assert now.value("conveyor_queue_depth", queue=INTERACTIVE) == 3
        assert now.value("conveyor_queue_depth", queue=BATCH) == 0
        assert now.value(SUBMITTED, queue=INTERACTIVE) == 3
        assert now.value("conveyor_workers") == now.value("conveyor_jobs_in_progress") == 0
    finally:
        idle.stop()


def test_a_limited_models_wait_is_a_histogram_by_model(stack, client):
    before = quiet(stack.url)
    assert call(client, model=LIMITED).status_code == 200
    after = scrape_until(stack.url, lambda now: ended(now, before) >= 1)
    assert after.minus(before, "conveyor_ratelimit_wait_seconds_count", model=LIMITED) == 1
    assert after.minus(before, "conveyor_ratelimit_wait_seconds_count", model=MODEL) == 0  # not limited


def test_the_token_guards_the_endpoint(stack):
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}):
        response = httpx.get(f"{stack.url}/metrics", headers=headers, timeout=10)
        assert response.status_code == 401
        assert response.json()["detail"]
    assert httpx.get(f"{stack.url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200


def test_the_worker_serves_its_own_process_metrics(stack):
    port = stack.env["CONVEYOR_WORKER_METRICS_PORT"]
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    own = Scrape(text)
    assert own.value("process_cpu_seconds_total") > 0
    assert own.value("process_resident_memory_bytes") > 0
    assert ("conveyor_worker_event_loop_lag_seconds", ()) in own.samples
    assert ("conveyor_worker_calls_in_flight", ()) in own.samples


def test_a_second_workers_counts_show_in_the_apis_scrape(stack, client):
    first = stack.workers[0]
    stack.env["CONVEYOR_WORKER_METRICS_PORT"] = str(free_port())
    stack.start_worker()
    assert scrape(stack.url).value("conveyor_workers") == 2
    first.terminate()
    first.wait(timeout=20)
    before = quiet(stack.url)
    assert before.value("conveyor_workers") == 1
    assert call(client).status_code == 200  # only the second worker is left to run it
    after = scrape_until(stack.url, lambda now: ended(now, before) >= 1)
    assert after.minus(before, FINISHED, status="succeeded") == 1
    assert after.minus(before, "conveyor_model_attempts_total", model=MODEL, outcome="success") == 1


def test_the_dashboard_queries_only_families_the_scrapes_serve(stack):
    served = set(scrape(stack.url).types)
    port = stack.env["CONVEYOR_WORKER_METRICS_PORT"]
    served |= set(Scrape(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text).types)
    dashboard = (ROOT / "deploy" / "grafana-dashboard.json").read_text()
    queried = {re.sub(r"_(bucket|total)$", "", name) for name in re.findall(r"\b(?:conveyor|process)_\w+", dashboard)}
    assert queried and queried <= served, queried - served
