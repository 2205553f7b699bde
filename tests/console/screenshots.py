"""Screenshots of every console view for the README: `make screenshots` (or `python -m
tests.console.screenshots`) starts the fake provider, an API and a worker on their own schema and Redis
database, fills a project through the public API, and saves PNGs in docs/console/.

The only data not made through the API: the usage chart's history. The spans of some calls are moved
back in time (up to a day) so the chart shows a day of traffic rather than one bar."""

from __future__ import annotations

import random
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import select

from app.store.tables import Span
from tests.console.browser import chromium, console_errors, css, missing_browser, sign_in, wait_for
from tests.console.seed import call, submit_batch, wait_batch
from tests.fakeprovider import FakeProviderServer
from tests.stack import Stack, start_stack

OUT = Path(__file__).resolve().parents[2] / "docs" / "console"
MODELS = ["openai/gpt-4o-mini", "openai/gpt-4o", "anthropic/claude-3-5-haiku-latest"]
TICKETS = [
    "My invoice shows two charges for March.",
    "The export button does nothing on Safari.",
    "How do I rotate my API key?",
    "Please cancel my subscription at the end of the month.",
    "The dashboard is slow since yesterday.",
    "Can I get a receipt in PDF?",
]


TRIAGE_SCHEMA = {
    "type": "object",
    "properties": {"team": {"type": "string", "enum": ["billing", "web"]}, "urgent": {"type": "boolean"}},
    "required": ["team", "urgent"],
}


def fill(stack: Stack, client: httpx.Client) -> dict[str, str]:
    """Calls of three functions (a day of them), a fallback, a failure, a traced pipeline, dataset
    entries, and a finished batch."""
    rng = random.Random(7)
    done = submit_batch(client, "classify-sentiment", [f"review {i}" for i in range(24)], model=MODELS[0])
    wait_batch(client, done["id"])
    for i, ticket in enumerate(TICKETS * 3):
        tags = {"team": rng.choice(["billing", "web"])}
        call(client, "triage-ticket", {"ticket": ticket}, model=MODELS[0], output_schema=TRIAGE_SCHEMA, tags=tags)
        if i % 2:
            call(client, "draft-reply", {"ticket": ticket}, model=MODELS[2], instructions="Draft a short, kind reply.")
    history = [j["trace_id"] for j in client.get("/jobs", params={"limit": 100}).json()["data"]]
    shifts = {trace_id: timedelta(hours=rng.uniform(1, 23)) for trace_id in history}
    with stack.db.transaction() as session:  # spread the day's traffic for the usage chart
        for span in session.scalars(select(Span).where(Span.trace_id.in_(history))):
            span.start_time -= shifts[span.trace_id]
            span.end_time -= shifts[span.trace_id]
    now = datetime.now(UTC)
    root = client.post(
        "/spans",
        json={"name": "nightly-report", "input": {"day": now.date().isoformat()}, "start_time": now.isoformat()},
    ).json()
    for ticket in TICKETS[:3]:
        call(
            client,
            "triage-ticket",
            {"ticket": ticket},
            parent_span_id=root["id"],
            model=MODELS[0],
            output_schema=TRIAGE_SCHEMA,
        )
    call(client, "summarize-thread", {"thread": TICKETS[3:]}, parent_span_id=root["id"], model=MODELS[1])
    client.patch(
        f"/spans/{root['id']}", json={"output": "4 tickets triaged", "end_time": datetime.now(UTC).isoformat()}
    )
    fallback = call(
        client,
        "summarize-thread",
        {"thread": TICKETS[:3]},
        model=[f"fake/flaky?fail=503&run={uuid.uuid4().hex[:6]}", MODELS[1]],
        instructions="Summarize the support thread in one sentence.",
        tags={"team": "support"},
    )
    failed = client.post(
        "/call", json={"name": "extract-invoice", "input": "Invoice #1042", "model": "fake/x?fail=400"}
    )
    assert failed.status_code >= 400, failed.text  # a failed job for the list

    function = client.get("/functions/by-name/triage-ticket").json()
    client.patch(f"/functions/{function['id']}", json={"instructions": "Route the ticket to billing or web."})
    for ticket, team in zip(TICKETS[:4], ["billing", "web", "web", "billing"], strict=True):
        entry = {"input": {"ticket": ticket}, "output": {"team": team, "urgent": False}, "comment": "reviewed"}
        client.post(f"/datasets/{function['dataset_id']}", json=entry).raise_for_status()
    return {"fallback_job": fallback["id"], "trace": root["trace_id"], "function": function["id"]}


def start_live_batch(client: httpx.Client) -> str:
    """A batch that takes a minute (2.5 s per item), to be seen running."""
    items = [f"question {i}" for i in range(400)]
    return submit_batch(client, "translate-faq", items, model=f"{MODELS[0]}?latency_ms=2500")["id"]


def shoot(driver, name: str, ready: str) -> None:
    wait_for(driver, lambda d: css(d, ready), f"{name} ({ready})")
    time.sleep(0.3)  # let the last repaint land before the capture (a picture, not an assertion)
    driver.save_screenshot(str(OUT / f"{name}.png"))
    print(f"saved docs/console/{name}.png")


def main() -> None:
    reason = missing_browser()
    if reason:
        raise SystemExit(reason)
    OUT.mkdir(parents=True, exist_ok=True)
    with FakeProviderServer() as fake:
        stack = start_stack(fake.url, CONVEYOR_DEFAULT_MODEL="openai/gpt-4o-mini")
        try:
            key = stack.new_key("acme-support")
            with stack.client(key) as client:
                ids = fill(stack, client)
            with chromium(width=1440, height=960) as driver:
                view = f"{stack.url}/console#/"
                driver.get(f"{stack.url}/console")
                shoot(driver, "login", "#login-form")
                sign_in(driver, stack.url, key)
                shoot(driver, "jobs", "tr.job-row")
                driver.get(f"{view}jobs/{ids['fallback_job']}")
                shoot(driver, "job", "#attempts-table tr.attempt-row")
                driver.get(f"{view}traces")
                shoot(driver, "traces", "tr.trace-row")
                driver.get(f"{view}traces/{ids['trace']}")
                shoot(driver, "trace", "#trace-tree tr.span-row")
                driver.get(f"{view}functions")
                shoot(driver, "functions", "tr.function-row")
                driver.get(f"{view}functions/{ids['function']}")
                shoot(driver, "function", "#entries-table tbody tr")
                driver.get(f"{view}usage?range=24h")
                shoot(driver, "usage", "#cost-chart rect")
                with stack.client(key) as client:
                    live = start_live_batch(client)
                driver.get(f"{view}batches")
                live_row = f'tr.batch-row[data-batch-id="{live}"]'
                wait_for(driver, lambda d: "items/s" in " ".join(e.text for e in css(d, live_row)), "a live rate")
                shoot(driver, "batches", "tr.batch-row")
                driver.get(f"{view}batches/{live}")
                shoot(driver, "batch", "#batch-items tr.item-row")
                errors = console_errors(driver)
                if errors:
                    raise SystemExit(f"browser console errors: {errors}")
        finally:
            stack.stop()


if __name__ == "__main__":
    main()
