"""`conveyor batch ...` run as a real subprocess against a real stack: submit with a live progress
line, results to a file, status, refused lines by number, cancel, retry, and clear messages (no
tracebacks) for a wrong key, an unreachable server and an unknown function."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.helpers import wait_for_batch
from tests.stack import ROOT

INPUT_SCHEMA = {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}
OUTPUT_SCHEMA = {"type": "object", "properties": {"label": {"type": "string"}}, "required": ["label"]}


def conveyor(stack, key: str, *args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", "batch", *args],
        env={**os.environ, "CONVEYOR_URL": stack.url, "CONVEYOR_API_KEY": key, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def conveyor_in_background(stack, key: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "app.cli", "batch", *args],
        env={**os.environ, "CONVEYOR_URL": stack.url, "CONVEYOR_API_KEY": key},
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def create_function(stack, key: str, model: str = "fake/cli") -> str:
    name = f"cli-{uuid.uuid4().hex[:8]}"
    body = {"name": name, "instructions": "Label the text.", "model": model}
    body |= {"input_schema": INPUT_SCHEMA, "output_schema": OUTPUT_SCHEMA}
    with stack.client(key) as client:
        response = client.post("/functions", json=body)
    assert response.status_code in (200, 201), response.text
    return name


def write_items(path: Path, n: int, prefix: str = "item") -> list[str]:
    ids = [f"{prefix}-{i:04d}" for i in range(n)]
    path.write_text("".join(json.dumps({"custom_id": c, "input": {"text": f"text {c}"}}) + "\n" for c in ids))
    return ids


def assert_no_traceback(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stderr, result.stderr


def test_submit_wait_shows_progress_then_results_and_status(stack, key, tmp_path):
    function = create_function(stack, key)
    ids = write_items(tmp_path / "items.jsonl", 200)

    submitted = conveyor(stack, key, "submit", str(tmp_path / "items.jsonl"), "--function", function, "--wait")
    assert submitted.returncode == 0, submitted.stderr
    assert_no_traceback(submitted)
    batch_id = submitted.stdout.strip()  # the id alone on stdout: ID=$(conveyor batch submit ...) works
    assert batch_id and "\n" not in batch_id
    assert "200/200" in submitted.stderr and "items/s" in submitted.stderr  # the progress line
    assert f"batch {batch_id}: completed" in submitted.stderr  # the summary
    assert "200 succeeded, 0 failed" in submitted.stderr

    out = tmp_path / "out.jsonl"
    results = conveyor(stack, key, "results", batch_id, "-o", str(out))
    assert results.returncode == 0, results.stderr
    assert "wrote 200 results" in results.stderr and "200 succeeded" in results.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["custom_id"] for line in lines] == ids  # every item once, in submission order
    assert {line["status"] for line in lines} == {"succeeded"}
    assert all(isinstance(line["result"]["json_payload"]["label"], str) for line in lines)

    failed_only = conveyor(stack, key, "results", batch_id, "--status", "failed", "-o", str(tmp_path / "f.jsonl"))
    assert failed_only.returncode == 0 and (tmp_path / "f.jsonl").read_text() == ""

    status = conveyor(stack, key, "status", batch_id, "--json")
    assert status.returncode == 0, status.stderr
    raw = json.loads(status.stdout)
    assert raw["id"] == batch_id and raw["status"] == "completed"
    assert raw["counts"]["total"] == 200 and raw["counts"]["succeeded"] == 200
    readable = conveyor(stack, key, "status", batch_id)
    assert f"batch {batch_id}: completed" in readable.stdout and "200 total: 200 succeeded" in readable.stdout


def test_invalid_lines_are_listed_by_number_and_exit_2(stack, key, tmp_path):
    function = create_function(stack, key)
    path = tmp_path / "bad.jsonl"
    lines = [
        {"custom_id": "a1", "input": {"text": "fine"}},
        "this is not json",
        {"custom_id": "a3", "input": {"text": "fine"}},
        {"custom_id": "a4", "input": {"words": 3}},  # breaks the input schema
        {"custom_id": "a1", "input": {"text": "again"}},  # a duplicate custom_id
    ]
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))

    refused = conveyor(stack, key, "submit", str(path), "--function", function)
    assert refused.returncode == 2, refused.stderr
    assert_no_traceback(refused)
    assert refused.stdout == ""  # no batch id: nothing was submitted
    listed = [int(m) for m in re.findall(r"^  line (\d+)", refused.stderr, re.MULTILINE)]
    assert listed == [2, 4, 5], refused.stderr
    assert "(a4): input" in refused.stderr and "(a1): custom_id" in refused.stderr
    assert "--on-invalid skip" in refused.stderr
    with stack.client(key) as client:
        assert client.get("/batches").json()["meta"]["total_count"] == 0

    skipped = conveyor(stack, key, "submit", str(path), "--function", function, "--on-invalid", "skip", "--wait")
    assert skipped.returncode == 0, skipped.stderr
    assert "skipped 3 invalid lines" in skipped.stderr and "line 4" in skipped.stderr
    assert "2 total: 2 succeeded" in skipped.stderr


def test_metadata_and_idempotency_key(stack, key, tmp_path):
    function = create_function(stack, key)
    write_items(tmp_path / "items.jsonl", 5)
    args = ["submit", str(tmp_path / "items.jsonl"), "--function", function, "--metadata", "team=nlp", "run=7"]
    args += ["--idempotency-key", f"k-{uuid.uuid4().hex}"]
    first, second = conveyor(stack, key, *args), conveyor(stack, key, *args)
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    assert first.stdout == second.stdout  # the same batch, not a second one
    assert "already submitted" in second.stderr
    raw = json.loads(conveyor(stack, key, "status", first.stdout.strip(), "--json").stdout)
    assert raw["metadata"] == {"team": "nlp", "run": "7"}


def test_failed_items_complete_with_exit_0_and_retry_makes_a_new_batch(stack, key, tmp_path):
    function = create_function(stack, key, model="fake/cli?fail=500")
    write_items(tmp_path / "items.jsonl", 10)
    submitted = conveyor(stack, key, "submit", str(tmp_path / "items.jsonl"), "--function", function, "--wait")
    assert submitted.returncode == 0, submitted.stderr  # completed, even with every item failed
    batch_id = submitted.stdout.strip()
    assert "0 succeeded, 10 failed" in submitted.stderr
    assert f"conveyor batch results {batch_id} --status failed" in submitted.stderr
    assert f"conveyor batch retry {batch_id}" in submitted.stderr

    failed = conveyor(stack, key, "results", batch_id, "--status", "failed")  # to stdout
    lines = [json.loads(line) for line in failed.stdout.splitlines()]
    assert len(lines) == 10 and all(line["status"] == "failed" and line["error"]["message"] for line in lines)

    retried = conveyor(stack, key, "retry", batch_id, "--wait")
    assert retried.returncode == 0, retried.stderr
    new_id = retried.stdout.strip()
    assert new_id and new_id != batch_id and "10 total" in retried.stderr


def test_cancel_ends_a_waiting_submit_with_exit_3(stack, key, tmp_path):
    function = create_function(stack, key, model="fake/cli?latency_ms=1000")
    write_items(tmp_path / "items.jsonl", 300)
    waiting = conveyor_in_background(
        stack, key, "submit", str(tmp_path / "items.jsonl"), "--function", function, "--wait"
    )
    batch_id = waiting.stdout.readline().strip()
    assert batch_id, waiting.stderr.read()
    with stack.client(key) as client:  # under way: the first items have answered, the rest still to run
        wait_for_batch(client, batch_id, lambda batch: batch["counts"]["succeeded"] > 0)
    cancelled = conveyor(stack, key, "cancel", batch_id)
    assert cancelled.returncode == 0, cancelled.stderr
    assert f"batch {batch_id} is cancel" in cancelled.stderr
    out, err = waiting.communicate(timeout=60)
    assert waiting.returncode == 3, err
    assert f"batch {batch_id}: cancelled" in err
    raw = json.loads(conveyor(stack, key, "status", batch_id, "--json").stdout)
    assert raw["counts"]["cancelled"] > 0 and raw["counts"]["succeeded"] < 300


def test_wrong_key_unknown_function_and_unreachable_server_say_what_to_do(stack, key, tmp_path):
    write_items(tmp_path / "items.jsonl", 3)
    file = str(tmp_path / "items.jsonl")

    wrong = conveyor(stack, key + "x", "submit", file, "--function", "anything")
    assert wrong.returncode == 1 and "set CONVEYOR_API_KEY or pass --key" in wrong.stderr
    assert_no_traceback(wrong)
    keyless = conveyor(stack, "", "status", "b_missing", CONVEYOR_DATA_DIR=str(tmp_path))
    assert keyless.returncode == 1 and "CONVEYOR_API_KEY" in keyless.stderr

    unknown = conveyor(stack, key, "submit", file, "--function", f"nope-{uuid.uuid4().hex[:6]}")
    assert unknown.returncode == 1 and "no function named" in unknown.stderr
    missing = conveyor(stack, key, "status", "b_does_not_exist")
    assert missing.returncode == 1 and "not found" in missing.stderr

    down = conveyor(stack, key, "status", "b1", CONVEYOR_URL="http://127.0.0.1:9")
    assert down.returncode == 1 and "make run" in down.stderr and "CONVEYOR_URL" in down.stderr
    for result in (keyless, unknown, missing, down):
        assert_no_traceback(result)


@pytest.mark.parametrize("bad", ["", "x", "=v"])
def test_metadata_must_be_key_value(bad):
    command = [sys.executable, "-m", "app.cli", "batch", "submit", "f.jsonl", "--function", "f", "--metadata", bad]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "KEY=VALUE" in result.stderr
