"""With no provider key a call fails saying which variable to set, not as a network error."""

from __future__ import annotations

import asyncio

import pytest

from app.config import Settings
from app.errors import ProviderRejected
from app.providers.base import CompletionRequest, Message
from app.providers.registry import ProviderRegistry
from tests.stack import start_stack


@pytest.fixture(scope="module")
def keyless(fake_provider):
    running = start_stack(
        fake_provider.url,
        OPENAI_API_KEY="",
        OPENAI_BASE_URL="https://api.openai.com/v1",
        ANTHROPIC_API_KEY="",
        ANTHROPIC_BASE_URL="https://api.anthropic.com",
    )
    yield running
    running.stop()


def test_a_call_without_the_key_says_what_to_set(keyless):
    with keyless.client(keyless.new_key()) as client:
        response = client.post("/call", json={"name": "k", "input": "hi", "model": "openai/gpt-4o-mini"})
        chain = client.post(
            "/call", json={"name": "k", "input": "hi", "model": ["anthropic/claude-sonnet-4-0", "fake/backup"]}
        )
    assert response.status_code == 502, response.text
    [attempt] = response.json()["detail"]["attempts"]  # not retried: nothing would change
    assert attempt["error_type"] == "ProviderRejected"
    assert attempt["message"].startswith("OPENAI_API_KEY is not set: set it in the environment")
    assert chain.status_code == 200, chain.text  # the next model of a chain answers instead


def test_a_compatible_server_needs_no_key():
    settings = Settings(_env_file=None, OPENAI_API_KEY="", OPENAI_BASE_URL="http://localhost:11434/v1")
    provider = ProviderRegistry(settings).resolve("openai/llama3").provider
    assert type(provider).__name__ == "OpenAIProvider"
    keyless = ProviderRegistry(Settings(_env_file=None, OPENAI_API_KEY="")).resolve("openai/gpt-4o").provider
    request = CompletionRequest(model="gpt-4o", messages=(Message("user", "hi"),))
    with pytest.raises(ProviderRejected, match="OPENAI_API_KEY is not set"):
        asyncio.run(keyless.complete(request))
