"""Pure pieces of the models area: custom model `extra`, secret boxes, the custom model cache, the
fake provider's lexical embeddings, and the registry's embeddings routing."""

from __future__ import annotations

import asyncio
import math

import pytest

from app.config import Settings
from app.engine.cost import ModelPrice, PriceTable
from app.errors import BadRequest, ProviderError, ProviderRejected
from app.providers.base import Usage
from app.providers.custom import CustomModelCache, CustomModelConfig, CustomModelUnavailable
from app.providers.embeddings import Embedder, OpenAIEmbeddings
from app.providers.fake_formats import EMBEDDING_DIMENSIONS, hashed_embedding
from app.providers.registry import ProviderRegistry
from app.secrets import SecretBox, SecretUnreadable, load_or_create_secret_key, require_box
from app.services.model_catalog import EndpointSettings, parse_extra
from tests.unit.manual_clock import ManualClock

# --- extra ------------------------------------------------------------------------------------------


def test_extra_gives_endpoint_and_per_token_or_per_million_prices():
    assert parse_extra({"api_base": "http://h:1/v1/", "input_cost_per_token": 2e-6, "output_cost_per_token": 3e-6}) == (
        EndpointSettings("http://h:1/v1", 2e-6, 3e-6)
    )
    per_million = parse_extra({"api_base": "https://h/v1", "input_cost_per_million": 2, "output_cost_per_million": 3})
    assert per_million.input_cost_per_token == pytest.approx(2e-6)
    assert per_million.output_cost_per_token == pytest.approx(3e-6)
    assert parse_extra({"api_base": "https://h/v1", "note": "kept"}) == EndpointSettings("https://h/v1", 0.0, 0.0)


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({}, "extra.api_base"),
        ({"api_base": "ftp://h"}, "extra.api_base"),
        ({"api_base": 3}, "extra.api_base"),
        ({"api_base": "http://h", "input_cost_per_token": -1}, "extra.input_cost_per_token"),
        ({"api_base": "http://h", "output_cost_per_million": "1"}, "extra.output_cost_per_million"),
        ({"api_base": "http://h", "input_cost_per_token": True}, "extra.input_cost_per_token"),
        (
            {"api_base": "http://h", "input_cost_per_token": 1, "input_cost_per_million": 1},
            "extra.input_cost_per_token",
        ),
        ({"api_base": "http://h", "api_key": "sk-x"}, "extra.api_key"),
    ],
)
def test_bad_extra_is_400_naming_the_key(extra, field):
    with pytest.raises(BadRequest) as info:
        parse_extra(extra)
    assert info.value.field_name == field
    assert str(info.value.detail).startswith(f"{field}: ")


# --- secrets ----------------------------------------------------------------------------------------


def test_secret_box_round_trip_and_wrong_key(tmp_path):
    box = SecretBox("one secret")
    token = box.encrypt("sk-live-123")
    assert "sk-live-123" not in token
    assert box.decrypt(token) == "sk-live-123"
    assert SecretBox("one secret").decrypt(token) == "sk-live-123"  # same secret, another process
    with pytest.raises(SecretUnreadable, match="CONVEYOR_SECRET_KEY"):
        SecretBox("another secret").decrypt(token)
    first = load_or_create_secret_key(tmp_path / "data")
    assert first == load_or_create_secret_key(tmp_path / "data") and len(first) >= 32
    assert (tmp_path / "data" / "secret_key").stat().st_mode & 0o777 == 0o600


def test_storing_a_secret_without_a_configured_key_says_what_to_set():
    with pytest.raises(BadRequest) as info:
        require_box(None, "api_key")
    assert info.value.status_code == 400 and info.value.field_name == "api_key"
    assert "CONVEYOR_SECRET_KEY" in info.value.message


# --- custom model cache ---------------------------------------------------------------------------


CONFIG = CustomModelConfig("m1", "mine", "llama", "http://h/v1", "k", 1e-6, 2e-6)


def test_cache_loads_once_per_ttl_and_reports_each_load():
    loads, seen, clock = [], [], ManualClock()

    def loader(model_id: str) -> CustomModelConfig | None:
        loads.append(model_id)
        return CONFIG if model_id == "m1" else None

    cache = CustomModelCache(loader, ttl_seconds=60, on_load=seen.append, clock=clock)

    async def scenario() -> None:
        assert await cache.get("m1") == CONFIG
        assert await cache.get("m1") == CONFIG
        clock.now = 61
        assert await cache.get("m1") == CONFIG
        with pytest.raises(ProviderRejected, match="no such custom model"):
            await cache.get("gone")

    asyncio.run(scenario())
    assert loads == ["m1", "m1", "gone"]
    assert seen == [CONFIG, CONFIG]


def test_cache_turns_loader_failures_into_provider_errors():
    def unusable(_: str) -> CustomModelConfig | None:
        raise CustomModelUnavailable("its key cannot be decrypted")

    def broken(_: str) -> CustomModelConfig | None:
        raise RuntimeError("database down")

    with pytest.raises(ProviderRejected, match="cannot be decrypted"):
        asyncio.run(CustomModelCache(unusable).get("m1"))
    with pytest.raises(ProviderError) as info:
        asyncio.run(CustomModelCache(broken).get("m1"))
    assert info.value.retryable and info.value.model == "custom/m1"


def test_registry_publishes_custom_prices_to_the_engine_table():
    registry = ProviderRegistry(Settings(_env_file=None), custom_models=lambda _: CONFIG)
    prices = PriceTable.from_path(None)
    registry.on_custom_model_loaded(prices.set_custom_model_price)
    assert registry.custom_models is not None
    asyncio.run(registry.custom_models.get("m1"))
    cost = prices.cost("custom/m1", Usage(input_tokens=1000, output_tokens=500))
    assert cost.generation == pytest.approx(1000 * 1e-6 + 500 * 2e-6)
    assert registry.resolve("custom/m1").model_id == "m1"
    assert "custom" not in ProviderRegistry(Settings(_env_file=None)).known_prefixes()  # only with a loader


def test_set_price_refuses_patterns():
    with pytest.raises(ValueError):
        PriceTable([]).set_price(ModelPrice("custom/*", 1, 1, "x", "y"))


# --- embeddings -----------------------------------------------------------------------------------


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))  # the vectors are unit length


def test_fake_embeddings_are_deterministic_unit_vectors_that_rank_by_shared_words():
    question = hashed_embedding("How do I reset my password?")
    assert question == hashed_embedding("how do i RESET my password")
    assert len(question) == EMBEDDING_DIMENSIONS
    assert math.isclose(sum(x * x for x in question), 1.0)
    related = hashed_embedding("Password reset: click 'forgot password' on the login page")
    unrelated = hashed_embedding("The capital of Sweden is Stockholm")
    assert cosine(question, related) > 0.4 > cosine(question, unrelated)
    assert len(hashed_embedding("", 8)) == 8 and sum(hashed_embedding("", 8)) == 1.0


def test_registry_routes_embeddings_by_prefix():
    registry = ProviderRegistry(Settings(_env_file=None, fake_provider_url="http://fake.test:9/"))
    client = registry.embeddings("fake/embed-small")
    assert isinstance(client, OpenAIEmbeddings) and isinstance(client, Embedder)
    assert client.base_url == "http://fake.test:9/v1" and client.model_id == "embed-small"
    assert registry.embeddings("openai/text-embedding-3-small").model_id == "text-embedding-3-small"
    with pytest.raises(BadRequest, match="no embeddings endpoint") as info:
        registry.embeddings("anthropic/claude-3-5-haiku-latest")
    assert info.value.field_name == "model"
    with pytest.raises(BadRequest, match="unknown model"):
        registry.embeddings("nowhere/model")
