"""A worker SIGKILLed at each point of a provider batch's life: before the provider batch is created,
between its creation and the recording of its id, and while its answers are collected. There is never
a second provider batch for the same items, no item is billed twice, and every item ends."""

from __future__ import annotations

import pytest

from tests.fakeprovider import FakeProviderServer
from tests.helpers import eventually, run_label, wait_for_batch
from tests.stack import start_stack
from tests.workers.test_provider_batches import generations, results, submit


@pytest.fixture(scope="module")
def fake():
    with FakeProviderServer() as server:  # its own: tests hold its endpoints
        yield server


@pytest.fixture
def crash_stack(fake):
    # A killed worker's provider-batch lock lapses within a second (5 s by default), so its successor
    # takes over the batch at once instead of after a wait.
    stack = start_stack(
        fake.url, workers=0, CONVEYOR_PROVIDER_BATCH_POLL_SECONDS="0.2", CONVEYOR_PROVIDER_BATCH_LOCK_SECONDS="1"
    )
    yield stack
    stack.stop()


def assert_billed_once(stack, client, batch: dict, spans_per_item: dict[str, int]) -> None:
    lines = results(client, batch["id"])
    assert all(line["status"] == "succeeded" for line in lines.values())
    spans = generations(stack, batch["id"])
    assert {custom_id: len(attempts) for custom_id, attempts in spans.items()} == spans_per_item
    billed = sum(span.cost_generation for attempts in spans.values() for span in attempts)
    assert batch["cost"]["generation"] == pytest.approx(billed)
    assert billed == pytest.approx(sum(line["result"]["cost"]["generation"] for line in lines.values()))


@pytest.mark.parametrize(("point", "provider"), [("upload", "fake"), ("create", "fake"), ("create", "fake-anthropic")])
def test_a_worker_killed_before_the_id_is_recorded_makes_no_second_provider_batch(crash_stack, fake, point, provider):
    """`upload`: killed before the create call; `create`: the provider created the batch, the worker
    died before it could record the id (found again: by its metadata at OpenAI, by listing at Anthropic)."""
    stack = crash_stack
    counter = "batches_created" if provider == "fake" else "message_batches_created"
    before = fake.batches()[counter]
    fake.hold(point)
    doomed = stack.start_worker()
    try:
        with stack.client(stack.new_key()) as client:
            batch = submit(client, f"{provider}/crash?run={run_label()}", 6, execution="provider")
            eventually(lambda: fake.batches()["held"].get(point) == 1)
            stack.kill_worker(doomed)
            fake.release(point)  # the held request goes on: with `create`, the batch now exists
            expected = before + (1 if point == "create" else 0)
            eventually(lambda: fake.batches()[counter] == expected)
            stack.start_worker()
            batch = wait_for_batch(client, batch["id"], lambda b: b["status"] == "completed")
            assert fake.batches()[counter] == before + 1
            [pbatch] = batch["provider_batches"]
            assert pbatch["state"] == "collected" and pbatch["items"] == 6
            assert_billed_once(stack, client, batch, {f"item-{i}": 1 for i in range(6)})
    finally:
        fake.release(point)


def test_a_worker_killed_while_collecting_bills_nothing_twice(crash_stack, fake):
    """The output file's answers are recorded, then the worker dies reading the error file. Its
    successor reads both again: the recorded items stay as they are, the errored ones fall back."""
    stack = crash_stack
    label = run_label()
    chain = [f"fake/flaky?fail=503&fail_times=3&run={label}", f"fake/backup?run={label}"]
    before = fake.batches()["batches_created"]
    fake.hold("error_content")
    doomed = stack.start_worker()
    try:
        with stack.client(stack.new_key()) as client:
            batch = submit(client, chain, 10, execution="provider")
            eventually(lambda: fake.batches()["held"].get("error_content") == 1)
            wait_for_batch(client, batch["id"], lambda b: b["counts"]["succeeded"] == 7)
            stack.kill_worker(doomed)
            fake.release("error_content")
            stack.start_worker()
            batch = wait_for_batch(client, batch["id"], lambda b: b["status"] == "completed")
            spans = generations(stack, batch["id"])
            fell_back = {custom_id for custom_id, attempts in spans.items() if len(attempts) == 2}
            assert len(fell_back) == 3
            assert_billed_once(
                stack, client, batch, {f"item-{i}": 2 if f"item-{i}" in fell_back else 1 for i in range(10)}
            )
            assert fake.batches()["batches_created"] == before + 1
    finally:
        fake.release("error_content")
