"""Without an OTLP endpoint nothing of the tracing machinery is loaded: the API and worker processes,
run as in production and having served a call, have not imported the OTel SDK's tracing, any OTLP
exporter, gRPC, or Conveyor's own tracing modules. With the endpoint set the same check finds them.

(`opentelemetry` itself, the API package, is imported with tracing off too, but not by Conveyor:
FastAPI's native telemetry imports it, and redis-py's observability module imports the SDK's
metrics when the SDK is installed; neither sends anything without a configured provider.)"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import redis
from sqlalchemy import select

from app.config import Settings
from app.embedded import free_port, wait_for_port
from app.store import keys
from app.store.db import Database, run_migrations
from app.store.projects import ProjectRepository
from app.store.tables import Job
from tests.redis_dbs import release_redis_url
from tests.stack import ROOT, drop_pg_schema, new_pg_schema, new_redis_url
from tests.tracing.receiver import OtlpHttpReceiver

TRACING_MODULES = (
    "opentelemetry.sdk.trace",
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.proto.grpc.trace_exporter",
    "grpc",
    "app.observability.otel",
    "app.observability.ids",
    "app.observability.api_spans",
    "app.observability.worker_spans",
    "app.observability.genai",
)


def run_processes(tmp_path: Path, fake_url: str, extra_env: dict[str, str]) -> tuple[dict[str, set[str]], str | None]:
    """Start the API and a worker as `conveyor api` / `conveyor worker` processes, make one call, stop
    them; the modules each had loaded, and the trace context stored with the call's job."""
    schema, database_url = new_pg_schema()
    port = free_port()
    base = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env = {
        **base,
        "DATABASE_URL": database_url,
        "REDIS_URL": new_redis_url(),
        "OPENAI_BASE_URL": fake_url + "/v1",
        "OPENAI_API_KEY": "sk-test",
        "CONVEYOR_FAKE_PROVIDER_URL": fake_url,
        "CONVEYOR_LOG_LEVEL": "WARNING",
        **extra_env,
    }
    settings = Settings(_env_file=None, DATABASE_URL=database_url, REDIS_URL=env["REDIS_URL"])
    run_migrations(settings.database_url)
    db = Database(settings.database_url)
    processes: dict[str, subprocess.Popen] = {}
    try:
        for role, args in (
            ("api", ["api", "--port", str(port), "--no-migrate"]),
            ("worker", ["worker", "--concurrency", "4", "--no-migrate"]),
        ):
            command = [sys.executable, "-m", "tests.tracing.modules_at_exit", str(tmp_path / role), *args]
            processes[role] = subprocess.Popen(
                command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
        wait_for_port(port, timeout=30)
        presence = redis.Redis.from_url(settings.redis_url)
        deadline = time.monotonic() + 30
        while not presence.keys(keys.worker_presence("*", processes["worker"].pid)):
            assert time.monotonic() < deadline and processes["worker"].poll() is None, "worker did not start"
            time.sleep(0.05)
        key = ProjectRepository(db).create_key("off")
        body = {"name": "plain", "input": "hello", "model": "openai/gpt-4o-mini"}
        headers = {"Authorization": f"Bearer {key}", "traceparent": f"00-{'ab' * 16}-{'cd' * 8}-01"}
        response = httpx.post(f"http://127.0.0.1:{port}/v2/call", json=body, headers=headers, timeout=30)
        assert response.status_code == 200, response.text
        with db.transaction() as session:
            stored = session.scalars(select(Job.trace_context)).one()
    finally:
        for process in processes.values():
            process.send_signal(signal.SIGINT)  # uvicorn re-raises a SIGTERM, skipping atexit
        for process in processes.values():
            process.wait(timeout=30)
        db.dispose()
        drop_pg_schema(schema)
        release_redis_url(settings.redis_url)  # this process holds a few of the 15 at most (tests/redis_dbs.py)
    return {role: set((tmp_path / role).read_text().split()) for role in processes}, stored


def test_with_no_endpoint_nothing_of_tracing_is_loaded(tmp_path, fake_provider) -> None:
    loaded, stored = run_processes(tmp_path, fake_provider.url, {"OTEL_SERVICE_NAME": "not-an-endpoint"})
    for role, modules in loaded.items():
        assert "app.cli" in modules, role  # the file is the process's own
        assert not modules & set(TRACING_MODULES), role
    assert stored is None  # nor is a trace context kept with the job


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_with_an_endpoint_the_same_check_finds_them(tmp_path, fake_provider, protocol) -> None:
    with OtlpHttpReceiver() as receiver:
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": protocol}
        # The receiver speaks HTTP only: a gRPC export to it fails, and would retry until the default
        # 10 s export timeout at each process's exit. What is checked here is what was loaded.
        env["OTEL_EXPORTER_OTLP_TIMEOUT"] = "1"
        loaded, stored = run_processes(tmp_path, fake_provider.url, env)
    exporter = "grpc" if protocol == "grpc" else "http"
    for role, modules in loaded.items():
        assert "opentelemetry.sdk.trace" in modules, role
        assert f"opentelemetry.exporter.otlp.proto.{exporter}.trace_exporter" in modules, role
    assert "app.observability.api_spans" in loaded["api"]
    assert "app.observability.genai" in loaded["worker"]
    assert json.loads(stored)["traceparent"].startswith(f"00-{'ab' * 16}-")  # the caller's trace, kept with the job
