"""Shared fixtures: the fake provider (a real HTTP server) and real Conveyor stacks."""

from __future__ import annotations

import pytest

from tests.fakeprovider import FakeProviderServer
from tests.redis_dbs import new_redis_url, release_redis_url
from tests.stack import Stack, start_stack


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
