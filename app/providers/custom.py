"""Custom models: `custom/<custom_model_id>` names, resolved on the worker without knowing the project.

The API rewrites a project's custom model name into `custom/<id>` (app/services/model_catalog.py)
after checking that the model is the project's. Here the adapter loads that model's endpoint and
decrypted key through a sync `CustomModelLoader` (a database read, run off the event loop and cached
for `ttl_seconds`) and delegates to an `OpenAIProvider` on the model's `api_base`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass, replace
from typing import Any

from app.errors import ProviderError, ProviderRejected
from app.providers.base import Completion, CompletionRequest, StreamEvent
from app.providers.embeddings import Embeddings, OpenAIEmbeddings
from app.providers.http_client import ProviderHTTPClient
from app.providers.openai import OpenAIProvider

log = logging.getLogger(__name__)

CUSTOM_PREFIX = "custom"


def custom_model_name(custom_model_id: str) -> str:
    """The project-free name a custom model runs under: `custom/<id>`."""
    return f"{CUSTOM_PREFIX}/{custom_model_id}"


@dataclass(frozen=True)
class CustomModelConfig:
    """What calling a custom model needs, with its API key already decrypted ("" for none)."""

    id: str
    name: str
    identifier: str  # the provider-side model id
    api_base: str
    api_key: str = ""
    input_cost_per_token: float = 0.0
    output_cost_per_token: float = 0.0

    @property
    def model_name(self) -> str:
        return custom_model_name(self.id)


class CustomModelUnavailable(Exception):
    """The custom model exists but cannot be used as stored (e.g. its key cannot be decrypted)."""


CustomModelLoader = Callable[[str], CustomModelConfig | None]
"""Sync: the config of a custom model by id, None when there is no such model. May raise
`CustomModelUnavailable`. Called in a worker thread, never on the event loop."""


class CustomModelCache:
    """Loads custom model configs off the loop and keeps each for `ttl_seconds`; `on_load` sees every
    fresh load (the registry uses it to publish the model's prices to the engine's price table)."""

    def __init__(
        self,
        loader: CustomModelLoader,
        *,
        ttl_seconds: float = 60.0,
        on_load: Callable[[CustomModelConfig], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._loader = loader
        self._ttl = ttl_seconds
        self._on_load = on_load
        self._clock = clock
        self._entries: dict[str, tuple[CustomModelConfig, float]] = {}

    async def get(self, custom_model_id: str) -> CustomModelConfig:
        """The config, or a ProviderError (the fallback chain then moves on to the next model)."""
        label = custom_model_name(custom_model_id)
        entry = self._entries.get(custom_model_id)
        if entry is not None and entry[1] > self._clock():
            return entry[0]
        try:
            config = await asyncio.to_thread(self._loader, custom_model_id)
        except CustomModelUnavailable as exc:
            raise ProviderRejected(f"{label}: {exc}", model=label) from exc
        except Exception as exc:  # the database, not the model, failed: retryable, and worth a log
            log.exception("loading custom model %s failed", custom_model_id)
            raise ProviderError(
                f"{label}: could not load the custom model ({type(exc).__name__})", model=label
            ) from exc
        if config is None:
            self._entries.pop(custom_model_id, None)
            raise ProviderRejected(f"{label}: no such custom model (was it deleted?)", model=label)
        self._entries[custom_model_id] = (config, self._clock() + self._ttl)
        if self._on_load is not None:
            self._on_load(config)
        return config


class CustomModelProvider:
    """The `custom` prefix: `request.model` is a custom model id; the call goes to its endpoint."""

    name = CUSTOM_PREFIX

    def __init__(self, cache: CustomModelCache, client: ProviderHTTPClient) -> None:
        self._cache = cache
        self._client = client

    async def complete(self, request: CompletionRequest) -> Completion:
        config = await self._cache.get(request.model)
        return await self._adapter(config).complete(replace(request, model=config.identifier))

    async def stream(self, request: CompletionRequest) -> AsyncIterator[StreamEvent]:
        config = await self._cache.get(request.model)
        async with aclosing(self._adapter(config).stream(replace(request, model=config.identifier))) as events:
            async for event in events:
                yield event

    def _adapter(self, config: CustomModelConfig) -> OpenAIProvider:
        # Cheap: the adapter holds no connections of its own, only the shared client.
        return OpenAIProvider(config.name, config.api_base, config.api_key, self._client)


class CustomModelEmbeddings:
    """Embeddings from a custom model's endpoint (`{api_base}/embeddings` with its identifier)."""

    def __init__(self, cache: CustomModelCache, custom_model_id: str, client: ProviderHTTPClient) -> None:
        self._cache = cache
        self._id = custom_model_id
        self._client = client

    async def create(
        self,
        texts: Sequence[str],
        *,
        options: Mapping[str, Any] | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> Embeddings:
        config = await self._cache.get(self._id)
        client = OpenAIEmbeddings(config.name, config.api_base, config.api_key, config.identifier, self._client)
        return await client.create(texts, options=options or {}, extra_headers=extra_headers or {})

    async def embed(self, texts: list[str]) -> list[list[float]]:
        return (await self.create(texts)).vectors
