"""One traced stack for the tracing tests that need the API and a worker: an OTLP/HTTP receiver, and a
stack exporting to it with a short lease and quick sweeps (a killed worker's job is re-sent within
seconds) and quick provider-batch polls."""

from __future__ import annotations

import pytest

from tests.stack import Stack
from tests.tracing.receiver import OtlpHttpReceiver
from tests.tracing.traced import traced_stack


@pytest.fixture(scope="package")
def http_receiver():
    with OtlpHttpReceiver() as receiver:
        yield receiver


@pytest.fixture(scope="package")
def stack(fake_provider, http_receiver) -> Stack:
    settings = {
        "CONVEYOR_JOB_LEASE_SECONDS": "2",
        "CONVEYOR_SWEEP_INTERVAL": "0.5",
        "CONVEYOR_PROVIDER_BATCH_POLL_SECONDS": "0.2",
    }
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": http_receiver.endpoint}
    with traced_stack(fake_provider.url, env, **settings) as running:
        yield running


@pytest.fixture
def client(stack: Stack):
    with stack.client(stack.new_key()) as http:
        yield http
