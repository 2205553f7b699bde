"""The web console in a real browser (Debian's Chromium via Selenium) against a real API, worker and
fake provider: sign in with a key, see a call made just before, its attempts, a batch and a trace,
and no error in the browser's console on the way."""

from __future__ import annotations

import pytest

from tests.console.browser import chromium, console_errors, css, missing_browser, sign_in, wait_for
from tests.console.seed import seed_minimal

pytestmark = pytest.mark.skipif(missing_browser() is not None, reason=f"no browser: {missing_browser()}")


@pytest.fixture(scope="module")
def browser():
    with chromium() as driver:
        yield driver


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
    assert len(css(browser, "tr.job-row")) == 1 + batch["counts"]["total"]  # the call and the batch's items

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
