"""The web console in a real browser (Debian's Chromium via Selenium) against a real API, worker and
fake provider: sign in with a key, see a call made just before, its attempts, a batch and a trace,
and no error in the browser's console on the way."""

from __future__ import annotations

import json
import uuid

import pytest

from tests.console.browser import chromium, console_errors, css, missing_browser, sign_in, wait_for
from tests.console.seed import call, seed_minimal, submit_batch

pytestmark = pytest.mark.skipif(missing_browser() is not None, reason=f"no browser: {missing_browser()}")


@pytest.fixture(scope="module")
def downloads(tmp_path_factory):
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="module")
def browser(downloads):
    with chromium(downloads=downloads) as driver:
        yield driver
        assert console_errors(driver) == []  # whatever the last test left in the log


def text_of(driver, selector: str) -> str:
    return " ".join(element.text for element in css(driver, selector))


def test_the_console_shows_a_call_its_attempts_trace_and_a_batch(stack, key, browser):
    with stack.client(key) as client:
        seeded = seed_minimal(client)
    job, batch = seeded.job, seeded.batch
    assert job["status"] == "succeeded" and batch["status"] == "completed"

    sign_in(browser, stack.url, key)
    row = wait_for(browser, lambda d: css(d, f'tr.job-row[data-job-id="{job["id"]}"]'), "the call in the jobs list")[0]
    assert "succeeded" in row.text.lower() and "team:qa" in row.text and "openai/gpt-4o-mini" in row.text
    # The call only: batch items are listed under their batch (GET /v2/jobs leaves them out).
    assert len(css(browser, "tr.job-row")) == 1

    row.click()
    wait_for(browser, lambda d: css(d, "#attempts-table tr.attempt-row"), "the job's attempts")
    detail = text_of(browser, "#job-detail")
    assert job["id"] in detail and "Conveyor runs LLM calls as durable jobs." in detail
    assert job["result"]["message"] is None or job["result"]["message"][:20] in detail
    assert len(css(browser, "tr.attempt-row")) == 1

    css(browser, "#open-trace")[0].click()
    spans = wait_for(browser, lambda d: css(d, "#trace-tree tr.span-row"), "the trace tree")
    assert [s.text.split("\n")[0] for s in spans][0].startswith("CALL")  # the call span, then its attempt
    assert len(spans) == 2 and css(browser, "#trace-tree .timing-bar")
    wait_for(browser, lambda d: job["id"] in text_of(d, "#span-detail"), "the selected span's details")

    browser.get(f"{stack.url}/console#/batches")
    batch_row = wait_for(browser, lambda d: css(d, f'tr.batch-row[data-batch-id="{batch["id"]}"]'), "the batch")[0]
    assert "completed" in batch_row.text.lower() and "3 / 3" in batch_row.text
    batch_row.click()
    items = wait_for(browser, lambda d: css(d, "#batch-items tr.item-row"), "the batch's items")
    assert sorted(item.text.split()[0] for item in items) == ["item-1", "item-2", "item-3"]
    assert "succeeded 3" in text_of(browser, "#batch-counts") and css(browser, "#download-results")
    assert not css(browser, "#cancel-batch")  # an ended batch cannot be cancelled

    browser.get(f"{stack.url}/console#/functions")
    wait_for(browser, lambda d: len(css(d, "#functions-table a")) == 2, "both functions")
    browser.get(f"{stack.url}/console#/usage")
    wait_for(browser, lambda d: css(d, "#cost-chart rect"), "bars in the cost chart")

    assert console_errors(browser) == []


def test_lists_update_live_and_filter(stack, key, browser):
    with stack.client(key) as client:
        first = call(client, "live-a", "one", tags={"team": "red"})
        sign_in(browser, stack.url, key)
        wait_for(browser, lambda d: css(d, f'tr.job-row[data-job-id="{first["id"]}"]'), "the first call")
        second = call(client, "live-b", "two", tags={"team": "blue"})
    # no reload: the list polls and the new call appears
    wait_for(browser, lambda d: css(d, f'tr.job-row[data-job-id="{second["id"]}"]'), "a call made after loading")
    wait_for(browser, lambda d: "1–2 of 2" in d.find_element("class name", "pager").text, "the count under the list")
    assert not css(browser, ".pager a")  # one page: no newer or older links

    css(browser, "#filter-tag")[0].send_keys("team:blue\n")
    wait_for(browser, lambda d: "tag=team%3Ablue" in d.current_url, "the filter in the address")
    wait_for(
        browser, lambda d: [r.get_attribute("data-job-id") for r in css(d, "tr.job-row")] == [second["id"]], "one job"
    )
    browser.get(f"{stack.url}/console#/jobs?status=failed")
    wait_for(browser, lambda d: "No jobs match." in d.find_element("id", "jobs-body").text, "no failed jobs")
    assert console_errors(browser) == []


def test_a_running_batch_is_cancelled_and_its_results_downloaded(stack, key, browser, downloads):
    with stack.client(key) as client:
        inputs = [f"slow {i}" for i in range(120)]
        batch = submit_batch(client, f"slow-{uuid.uuid4().hex[:6]}", inputs, model="openai/gpt-4o-mini?latency_ms=4000")
    sign_in(browser, stack.url, key)
    browser.get(f"{stack.url}/console#/batches/{batch['id']}")
    cancel = wait_for(browser, lambda d: css(d, "#cancel-batch"), "the cancel button")[0]
    assert "running" in browser.find_element("id", "batch-detail").text.lower()
    cancel.click()
    wait_for(
        browser,
        lambda d: "cancelled" in " ".join(e.text.lower() for e in css(d, ".page-header .badge")),
        "the batch cancelled (running items finish first)",
        timeout=30,
    )
    assert not css(browser, "#cancel-batch")
    counts = browser.find_element("id", "batch-counts").text
    assert "cancelled 0" not in counts and "queued 0" in counts

    css(browser, "#download-results")[0].click()
    path = downloads / f"batch-{batch['id']}.jsonl"
    wait_for(browser, lambda d: path.exists() and path.stat().st_size > 0, "the downloaded results")
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["custom_id"] for line in lines] == [f"item-{i + 1}" for i in range(120)]
    assert {line["status"] for line in lines} <= {"succeeded", "cancelled"} and "cancelled" in {
        x["status"] for x in lines
    }
    assert console_errors(browser) == []


def test_a_wrong_key_is_refused_and_sign_out_forgets_the_key(stack, key, browser):
    sign_in(browser, stack.url, key)
    css(browser, "#logout")[0].click()
    wait_for(browser, lambda d: css(d, "#login-form")[0].is_displayed(), "the key form again")
    assert browser.execute_script("return sessionStorage.length") == 0
    css(browser, "#api-key")[0].send_keys("cvy_not-a-key")
    css(browser, "#login-form button[type=submit]")[0].click()
    wait_for(browser, lambda d: "not accepted" in d.find_element("id", "login-error").text, "the refusal")
    errors = console_errors(browser)
    assert len(errors) == 1 and "401" in errors[0]  # the refused request itself, and nothing else


def test_a_running_job_is_cancelled_from_its_page(stack, key, browser):
    """The fake provider's request outlives the cancel (the server finishes its sleep), so its latency
    is kept short enough not to hold up the fake provider's shutdown for long."""
    with stack.client(key) as client:
        body = {"name": "slow-job", "input": "wait", "model": "openai/gpt-4o-mini?latency_ms=10000"}
        job = client.post("/jobs", json=body).json()
    sign_in(browser, stack.url, key)
    browser.get(f"{stack.url}/console#/jobs/{job['id']}")
    wait_for(browser, lambda d: css(d, "#cancel-job"), "the cancel button")[0].click()
    wait_for(
        browser,
        lambda d: "cancelled" in " ".join(e.text.lower() for e in css(d, "#job-detail .page-header .badge")),
        "the job cancelled",
    )
    assert not css(browser, "#cancel-job") and "\nwait\n" in browser.find_element("id", "job-detail").text
    with stack.client(key) as client:
        assert client.get(f"/jobs/{job['id']}").json()["status"] == "cancelled"
    assert console_errors(browser) == []
