"""Shared fixtures: the fake provider (a real HTTP server) and real Conveyor stacks."""

from __future__ import annotations

import pytest

from tests.fakeprovider import FakeProviderServer
from tests.redis_dbs import new_redis_url, release_redis_url
from tests.stack import Stack, start_stack

# Where the slowest modules are (real worker processes, stacks of their own, fault injection): they are
# collected first. `make test` hands modules to its two processes in collection order (pytest-xdist's
# --dist loadfile, --no-loadscope-reorder), so both end together on the many short modules instead of one
# waiting out the other's last slow one; by default xdist hands out the modules with most tests first,
# which put the single-test fault modules (15-20 s each) last.
SLOW_FIRST = (
    "tests/faults/",
    "tests/workers/",
    "tests/metrics/",
    "tests/tracing/",
    "tests/test_cli_batch.py",
    "tests/test_embedded.py",
    "tests/console/",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        return next((i for i, prefix in enumerate(SLOW_FIRST) if item.nodeid.startswith(prefix)), len(SLOW_FIRST))

    items.sort(key=rank)  # stable: modules and tests keep their order within a rank


@pytest.fixture(scope="session")
def fake_provider():
    with FakeProviderServer() as server:
        yield server


@pytest.fixture(scope="session")
def shared_stack(fake_provider) -> Stack:
    """One API + one worker on a fresh schema and Redis DB, started once for the whole run."""
    running = start_stack(fake_provider.url, CONVEYOR_DEFAULT_MODEL="openai/gpt-4o-mini")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def stack(shared_stack: Stack) -> Stack:
    """The stack a module's tests run on: the shared one, unless the module defines a `stack` of its
    own (other settings, a fake provider of its own, workers it kills). Tests on the shared stack see
    only their own project's data (`key`) and leave the stack as they found it."""
    return shared_stack


@pytest.fixture
def key(stack: Stack) -> str:
    """A key of a project of its own, so tests on one stack never see each other's data."""
    return stack.new_key()


@pytest.fixture
def client(stack: Stack, key: str):
    """An HTTP client on the module's `stack` (a module's own `stack` fixture overrides the shared
    one) with `key`, the /v2 prefix as its base URL."""
    with stack.client(key) as http:
        yield http


@pytest.fixture
def redis_db_url() -> str:
    """An empty Redis database of the test's own on the test Redis server (tests/redis_dbs.py)."""
    url = new_redis_url()
    yield url
    release_redis_url(url)
