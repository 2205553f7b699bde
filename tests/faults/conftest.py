"""Fixtures of the fault suite: a private redis-server per test, a fresh Postgres schema, and the API
and workers as real `conveyor` processes on them (tests/faults/processes.py)."""

from __future__ import annotations

import pytest

from tests.faults import postgres
from tests.faults.processes import PrivateRedis, ProcessStack, start_process_stack
from tests.stack import drop_pg_schema, new_pg_schema

# Fast recovery for the tests: a worker renews its jobs' leases every lease/3 seconds; a job whose
# worker died is back on the queue within lease + sweep interval; a message lost in transit is sent
# again once its job has been queued for 10 s (5 minutes by default), checked every 6 sweep intervals;
# an Idempotency-Key reserved by a request killed before it wrote its job is free again after 3 s (60 s).
FAST_RECOVERY = {
    "CONVEYOR_JOB_LEASE_SECONDS": "2",
    "CONVEYOR_SWEEP_INTERVAL": "0.5",
    "CONVEYOR_STRANDED_AFTER": "10",
    "CONVEYOR_IDEMPOTENCY_RESERVATION_SECONDS": "3",
}


@pytest.fixture
def private_redis():
    server = PrivateRedis()
    server.start()
    yield server
    server.close()


@pytest.fixture
def fault_stack(request, fake_provider, private_redis) -> ProcessStack:
    """The API and a worker (`@pytest.mark.workers(n)`: n) on a private Redis and a fresh schema of the
    shared Postgres."""
    marker = request.node.get_closest_marker("workers")
    workers = marker.args[0] if marker else 1
    schema, database_url = new_pg_schema()
    stack = start_process_stack(database_url, private_redis.url, fake_provider.url, workers=workers, **FAST_RECOVERY)
    yield stack
    stack.stop()
    drop_pg_schema(schema)


@pytest.fixture
def private_postgres():
    if not postgres.available():
        pytest.skip(f"no PostgreSQL server binaries in {postgres.BIN} (set CONVEYOR_TEST_PG_BIN)")
    server = postgres.PrivatePostgres()
    server.init()
    server.start()
    yield server
    server.close()


# A lease that outlasts the test's Postgres outage (as the 60 s default outlasts a restart), so a worker
# holds what it finishes meanwhile (workers/outage.py); waiting calls and streams re-read their job
# within the outage.
OUTLAST_OUTAGE = {
    "CONVEYOR_JOB_LEASE_SECONDS": "5",
    "CONVEYOR_WAIT_RECHECK_SECONDS": "0.2",
    "CONVEYOR_STREAM_KEEPALIVE": "0.2",
}


@pytest.fixture
def pg_fault_stack(fake_provider, private_redis, private_postgres) -> ProcessStack:
    """The API and a worker on a private Redis and a private Postgres cluster the test may restart.

    The worker has 20 job slots, so messages are still waiting when the database goes away and some
    are delivered during the outage; and a lost message is sent again only after the default 5
    minutes, so one dropped instead of handed back to the queue fails the test."""
    overrides = {**FAST_RECOVERY, "CONVEYOR_STRANDED_AFTER": "300", **OUTLAST_OUTAGE}
    stack = start_process_stack(private_postgres.url, private_redis.url, fake_provider.url, workers=0, **overrides)
    stack.start_worker(concurrency=20)
    yield stack
    stack.stop()
