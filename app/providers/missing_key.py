"""The adapter for a hosted provider whose API key is not set: every call fails at once, saying what to set.

Without it a call went out with no key and failed as whatever the network made of it (offline:
"ProviderTimeout ... Name or service not known"), which tells a newcomer nothing. The failure is a
`ProviderRejected` (not retried; the next model of a fallback chain is tried), and the call's error names
the variable. A base URL pointing elsewhere (Ollama, vLLM...) needs no key, so this applies only to the
provider's own default URL (see `ProviderRegistry`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from app.errors import ProviderRejected
from app.providers.base import Completion, CompletionRequest, StreamEvent


class MissingKeyProvider:
    def __init__(self, name: str, key_variable: str, base_url_variable: str) -> None:
        self.name = name
        self.key_variable = key_variable
        self.base_url_variable = base_url_variable

    def _error(self, request: CompletionRequest) -> ProviderRejected:
        return ProviderRejected(
            f"{self.key_variable} is not set: set it in the environment (or .env) of the API and workers to call "
            f"{self.name} models, set {self.base_url_variable} for a compatible server that needs no key, "
            "or run `conveyor serve --demo` for simulated answers",
            model=f"{self.name}/{request.model}",
        )

    async def complete(self, request: CompletionRequest) -> Completion:
        raise self._error(request)

    async def stream(self, request: CompletionRequest) -> AsyncIterator[StreamEvent]:
        raise self._error(request)
        yield  # pragma: no cover - makes this an async generator, as the protocol's callers expect
