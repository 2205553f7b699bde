"""Text embeddings through an OpenAI-compatible `POST {base_url}/embeddings` endpoint.

`Embedder` is the small protocol other parts (few-shot selection) depend on; `OpenAIEmbeddings`
implements it and also reports the usage and model the endpoint answered with.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from app.providers.http_client import ProviderHTTPClient
from app.providers.http_errors import unreadable_body
from app.providers.wire import post_json

_NO_OPTIONS: Mapping[str, Any] = {}


@dataclass(frozen=True)
class Embeddings:
    """One vector per input text, in input order, with what the endpoint reported."""

    vectors: list[list[float]]
    model: str
    input_tokens: int = 0


@runtime_checkable
class Embedder(Protocol):
    async def embed(self, texts: list[str]) -> list[list[float]]: ...


class EmbeddingsClient(Protocol):
    """An `Embedder` that can also take per-request options and reports usage."""

    async def create(
        self,
        texts: Sequence[str],
        *,
        options: Mapping[str, Any] = _NO_OPTIONS,
        extra_headers: Mapping[str, str] = _NO_OPTIONS,
    ) -> Embeddings: ...

    async def embed(self, texts: list[str]) -> list[list[float]]: ...


class OpenAIEmbeddings:
    """`POST {base_url}/embeddings` for `model_id`. Failures raise `app.errors.ProviderError` subclasses."""

    def __init__(self, label: str, base_url: str, api_key: str, model_id: str, client: ProviderHTTPClient) -> None:
        self.label = label  # `provider/model`, used in error messages
        self.base_url = base_url.rstrip("/")
        self.model_id = model_id
        self._api_key = api_key
        self._client = client

    async def create(
        self,
        texts: Sequence[str],
        *,
        options: Mapping[str, Any] = _NO_OPTIONS,
        extra_headers: Mapping[str, str] = _NO_OPTIONS,
    ) -> Embeddings:
        # Options first, so they can never overwrite the model or the input; floats, not base64.
        body = {**options, "model": self.model_id, "input": list(texts), "encoding_format": "float"}
        headers = {"content-type": "application/json"}
        if self._api_key:
            headers["authorization"] = f"Bearer {self._api_key}"
        headers.update(extra_headers)
        payload = await post_json(
            self._client, f"{self.base_url}/embeddings", body, headers, model=self.label, secrets=(self._api_key,)
        )
        return _parse(payload, len(texts), self.model_id, self.label)

    async def embed(self, texts: list[str]) -> list[list[float]]:
        return (await self.create(texts)).vectors


def _parse(payload: Mapping[str, Any], expected: int, requested_model: str, label: str) -> Embeddings:
    items = payload.get("data")
    if not isinstance(items, list) or len(items) != expected:
        count = len(items) if isinstance(items, list) else "no"
        raise unreadable_body(label, 200, str(payload)[:500], f"{count} embeddings for {expected} inputs")
    ordered = sorted(items, key=lambda item: item.get("index", 0) if isinstance(item, Mapping) else 0)
    vectors = []
    for item in ordered:
        vector = item.get("embedding") if isinstance(item, Mapping) else None
        if not isinstance(vector, list) or not all(isinstance(x, int | float) for x in vector):
            raise unreadable_body(label, 200, str(item)[:500], "an embedding is not a list of numbers")
        vectors.append([float(x) for x in vector])
    usage = payload.get("usage") if isinstance(payload.get("usage"), Mapping) else {}
    return Embeddings(
        vectors=vectors,
        model=str(payload.get("model") or requested_model),
        input_tokens=int(usage.get("prompt_tokens") or usage.get("total_tokens") or 0),
    )
