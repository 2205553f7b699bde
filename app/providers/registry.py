"""Model name → adapter. `openai/gpt-4o-mini` goes to the `openai` factory with model id `gpt-4o-mini`.

Adapters are built on first use and share one HTTP client per event loop. The registry also gives each
prefix's provider key id (the rate limiter keeps a budget per key), an OpenAI-compatible embeddings
client per prefix that has one, and `custom/<id>` models loaded from the catalog (their listener is
told each one as it loads: the worker bills them at their own prices)."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from app.config import Settings
from app.errors import BadRequest
from app.providers.anthropic import AnthropicProvider
from app.providers.base import Provider, ResolvedModel, provider_key_id
from app.providers.custom import (
    CUSTOM_PREFIX,
    CustomModelCache,
    CustomModelConfig,
    CustomModelEmbeddings,
    CustomModelLoader,
    CustomModelProvider,
)
from app.providers.embeddings import EmbeddingsClient, OpenAIEmbeddings
from app.providers.http_client import ProviderHTTPClient
from app.providers.missing_key import MissingKeyProvider
from app.providers.openai import OpenAIProvider

ProviderFactory = Callable[[ProviderHTTPClient], Provider]
"""Builds one adapter on the registry's shared client (closures carry base URLs and keys)."""

EmbeddingsFactory = Callable[[ProviderHTTPClient, str], EmbeddingsClient]
"""Builds an embeddings client for a provider-side model id on the registry's shared client."""

FAKE_API_KEY = "fake-key"


def provider_http_limits(settings: Settings) -> httpx.Limits:
    # httpx defaults to 100 connections (and 20 kept alive): a worker holding thousands of calls in
    # flight would queue behind them, and reconnect constantly. Keep every connection alive.
    n = settings.provider_max_connections
    return httpx.Limits(max_connections=n, max_keepalive_connections=n)


def provider_http_timeout(settings: Settings) -> httpx.Timeout:
    # httpx defaults to 5 s, which kills ordinary long generations. The read timeout applies between
    # chunks, so a stream that keeps sending lives on; the connect timeout stays short to fail fast.
    return httpx.Timeout(settings.provider_timeout_seconds, connect=settings.provider_connect_timeout_seconds)


@dataclass
class _LoopScope:
    """The client and adapters bound to one event loop (httpx connections cannot cross loops)."""

    client: ProviderHTTPClient
    providers: dict[str, Provider] = field(default_factory=dict)


class ProviderRegistry:
    """Implements `ModelResolver`. Adapters are built on first use and share one `ProviderHTTPClient`
    per event loop: a worker that runs each job under `asyncio.run` gets a fresh client per loop
    instead of one whose pooled connections belong to a closed loop."""

    def __init__(self, settings: Settings, custom_models: CustomModelLoader | None = None) -> None:
        """`custom_models` loads a custom model by id (a database read); with it, `custom/<id>` resolves."""
        self._settings = settings
        self._factories: dict[str, ProviderFactory] = {}
        self._key_ids: dict[str, str] = {}
        self._embeddings: dict[str, EmbeddingsFactory] = {}
        self._custom_model_listener: Callable[[CustomModelConfig], None] | None = None
        self._scopes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopScope] = weakref.WeakKeyDictionary()
        # Resolved outside any loop (validation, sync code): its client binds to whichever loop uses it.
        self._unbound: _LoopScope | None = None
        s = settings
        fake_url = s.fake_provider_url.rstrip("/")
        defaults = {name: Settings.model_fields[f"{name}_base_url"].default for name in ("openai", "anthropic")}
        if not s.openai_api_key and s.openai_base_url == defaults["openai"]:
            self.register("openai", lambda c: MissingKeyProvider("openai", "OPENAI_API_KEY", "OPENAI_BASE_URL"))
        else:
            self.register(
                "openai",
                lambda c: OpenAIProvider("openai", s.openai_base_url, s.openai_api_key, c),
                api_key=s.openai_api_key,
            )
        if not s.anthropic_api_key and s.anthropic_base_url == defaults["anthropic"]:
            self.register(
                "anthropic", lambda c: MissingKeyProvider("anthropic", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL")
            )
        else:
            self.register(
                "anthropic",
                lambda c: AnthropicProvider("anthropic", s.anthropic_base_url, s.anthropic_api_key, c),
                api_key=s.anthropic_api_key,
            )
        self.register("fake", lambda c: OpenAIProvider("fake", f"{fake_url}/v1", FAKE_API_KEY, c), api_key=FAKE_API_KEY)
        # The fake speaks both wire formats; this prefix exercises the Anthropic adapter offline.
        self.register(
            "fake-anthropic",
            lambda c: AnthropicProvider("fake-anthropic", fake_url, FAKE_API_KEY, c),
            api_key=FAKE_API_KEY,
        )
        self.register_embeddings(
            "openai", lambda c, m: OpenAIEmbeddings(f"openai/{m}", s.openai_base_url, s.openai_api_key, m, c)
        )
        self.register_embeddings(
            "fake", lambda c, m: OpenAIEmbeddings(f"fake/{m}", f"{fake_url}/v1", FAKE_API_KEY, m, c)
        )
        self.custom_models: CustomModelCache | None = None
        if custom_models is not None:
            cache = CustomModelCache(
                custom_models, ttl_seconds=s.custom_model_cache_seconds, on_load=self._custom_model_loaded
            )
            self.custom_models = cache
            # No key id: `custom/<id>` is a rate-limit scope of its own, and its key is known only once loaded.
            self.register(CUSTOM_PREFIX, lambda c: CustomModelProvider(cache, c))
            self.register_embeddings(CUSTOM_PREFIX, lambda c, m: CustomModelEmbeddings(cache, m, c))

    def register(self, prefix: str, factory: ProviderFactory, *, api_key: str = "") -> None:
        """Add or replace a provider prefix. Adapters already built for it are dropped. `api_key` is the
        key its requests carry: the rate limiter keeps a budget per key (only its hash is kept)."""
        if not prefix or "/" in prefix:
            raise ValueError(f"a provider prefix must be non-empty and contain no '/': {prefix!r}")
        self._factories[prefix] = factory
        self._key_ids[prefix] = provider_key_id(api_key)
        for scope in self._all_scopes():
            scope.providers.pop(prefix, None)

    def register_embeddings(self, prefix: str, factory: EmbeddingsFactory) -> None:
        """Give a provider prefix an OpenAI-compatible embeddings endpoint."""
        self._embeddings[prefix] = factory

    def known_prefixes(self) -> list[str]:
        return sorted(self._factories)

    def on_custom_model_loaded(self, listener: Callable[[CustomModelConfig], None]) -> None:
        """Tell `listener` each custom model's config as it loads. The worker passes its price table's
        `set_custom_model_price`, so custom models bill at their own prices; the registry knows no prices."""
        self._custom_model_listener = listener

    def _custom_model_loaded(self, config: CustomModelConfig) -> None:
        if self._custom_model_listener is not None:
            self._custom_model_listener(config)

    def _split(self, model_name: str) -> tuple[str, str]:
        """Split on the first `/` only: model ids may themselves contain `/`, `?`, `=` or `&`."""
        prefix, slash, model_id = model_name.partition("/")
        if not slash or not model_id or prefix not in self._factories:
            raise BadRequest(
                f"unknown model {model_name!r}: expected '<provider>/<model id>' with provider one of "
                f"{', '.join(self.known_prefixes())}",
                field_name="model",
            )
        return prefix, model_id

    def resolve(self, model_name: str) -> ResolvedModel:
        prefix, model_id = self._split(model_name)
        scope = self._scope()
        provider = scope.providers.get(prefix)
        if provider is None:
            provider = scope.providers[prefix] = self._factories[prefix](scope.client)
        return ResolvedModel(provider, model_id, self._key_ids.get(prefix, ""))

    def embeddings(self, model_name: str) -> EmbeddingsClient:
        """An embeddings client for `provider/model`; BadRequest (field `model`) for a provider without one."""
        prefix, model_id = self._split(model_name)
        factory = self._embeddings.get(prefix)
        if factory is None:
            raise BadRequest(
                f"{prefix!r} models have no embeddings endpoint; use one of {', '.join(sorted(self._embeddings))}",
                field_name="model",
            )
        return factory(self._scope().client, model_id)

    async def aclose(self) -> None:
        """Close the clients this loop may close: its own and one never bound to a loop."""
        loop = asyncio.get_running_loop()
        for scope in (self._scopes.pop(loop, None), self._unbound):
            if scope is not None:
                await scope.client.aclose()
        self._unbound = None

    def _scope(self) -> _LoopScope:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            if self._unbound is None:
                self._unbound = _LoopScope(self._new_client())
            return self._unbound
        scope = self._scopes.get(loop)
        if scope is None:
            scope = self._scopes[loop] = _LoopScope(self._new_client())
        return scope

    def _all_scopes(self) -> list[_LoopScope]:
        return [*self._scopes.values(), *([self._unbound] if self._unbound else [])]

    def _new_client(self) -> ProviderHTTPClient:
        return ProviderHTTPClient(
            limits=provider_http_limits(self._settings), timeout=provider_http_timeout(self._settings)
        )
