"""Anthropic's Message Batches API: `POST /v1/messages/batches` with `requests: [{custom_id, params}]`,
polled until `processing_status` is `ended`, answers streamed from its `results_url` (JSONL, each
`result.type` succeeded / errored / canceled / expired).

Each request's `params` is `AnthropicProvider.build_body` of the line's request: exactly what the
synchronous path sends. Batches carry no metadata, so a batch is found again by listing: one created
after the intent, of as many requests, not already recorded (see `BatchIntent`).
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import httpx

from app.errors import ProviderResponseError
from app.providers.batch_api import BatchIntent, BatchLine, LineResult, RemoteBatch
from app.providers.http_errors import error_for_body, provider_error

if TYPE_CHECKING:
    from app.providers.anthropic import AnthropicProvider

CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
LIST_PAGE = 100
RESULT_CHUNK = 1000


class AnthropicBatchAPI:
    max_requests = 100_000
    max_bytes = 256 * 1024 * 1024

    def __init__(self, provider: AnthropicProvider, client: httpx.AsyncClient, api_key: str) -> None:
        self.provider = provider
        self.base_url = provider.base_url
        self._client = client
        self._api_key = api_key
        self._headers = provider.auth_headers  # the key and the pinned version, as the adapter sends them
        self._label = f"{provider.name} message batches"

    def request(self, line: BatchLine) -> dict[str, Any]:
        if not CUSTOM_ID.match(line.custom_id):
            raise ValueError(f"custom_id {line.custom_id!r} does not match {CUSTOM_ID.pattern}")
        return {"custom_id": line.custom_id, "params": self.provider.build_body(line.request)}

    def line_size(self, line: BatchLine) -> int:
        return len(json.dumps(self.request(line), separators=(",", ":"))) + 1

    async def submit(self, lines: Sequence[BatchLine], intent: BatchIntent) -> RemoteBatch:
        body = {"requests": [self.request(line) for line in lines]}
        return _remote(await self._call("POST", "/v1/messages/batches", json=body))

    async def find(self, intent: BatchIntent) -> RemoteBatch | None:
        """The oldest batch created after the intent, of its size, not taken by another record."""
        after: str | None = None
        found: RemoteBatch | None = None
        while True:
            params: dict[str, Any] = {"limit": LIST_PAGE, **({"after_id": after} if after else {})}
            page = await self._call("GET", "/v1/messages/batches", params=params)
            for batch in page.get("data") or ():  # newest first
                if _created(batch) < intent.created_after:
                    return found
                if batch["id"] not in intent.taken and _size(batch) == intent.count:
                    found = _remote(batch)
            if not page.get("has_more") or not page.get("data"):
                return found
            after = page.get("last_id") or page["data"][-1]["id"]

    async def get(self, batch_id: str) -> RemoteBatch:
        return _remote(await self._call("GET", f"/v1/messages/batches/{batch_id}"))

    async def cancel(self, batch_id: str) -> RemoteBatch:
        return _remote(await self._call("POST", f"/v1/messages/batches/{batch_id}/cancel"))

    async def results(self, batch: RemoteBatch) -> AsyncIterator[list[LineResult]]:
        """The results file, read as a stream, a chunk of lines at a time."""
        url = batch.handles.get("results_url")
        if not url:
            return
        chunk: list[LineResult] = []
        try:
            async with self._client.stream("GET", url, headers=self._headers) as response:
                if not response.is_success:
                    await response.aread()
                    raise provider_error(self._label, response, secrets=(self._api_key,))
                async for raw in response.aiter_lines():
                    if raw.strip():
                        chunk.append(self._result(json.loads(raw)))
                    if len(chunk) >= RESULT_CHUNK:
                        yield chunk
                        chunk = []
        except httpx.HTTPError as exc:
            raise provider_error(self._label, exc, secrets=(self._api_key,)) from exc
        if chunk:
            yield chunk

    def _result(self, entry: dict[str, Any]) -> LineResult:
        custom_id = str(entry.get("custom_id"))
        result = entry.get("result") or {}
        kind = result.get("type")
        if kind == "succeeded" and isinstance(result.get("message"), dict):
            message = result["message"]
            try:
                return LineResult(custom_id, completion=self.provider.parse_message(message, str(message.get("model"))))
            except ProviderResponseError as error:
                return LineResult(custom_id, error=error)
        if kind == "errored":
            error = result.get("error") if isinstance(result.get("error"), dict) else {}
            return LineResult(custom_id, error=error_for_body(self._label, error, secrets=(self._api_key,)))
        return LineResult(custom_id)  # canceled or expired: never run

    async def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = await self._client.request(method, f"{self.base_url}{path}", headers=self._headers, **kwargs)
        except httpx.HTTPError as exc:
            raise provider_error(self._label, exc, secrets=(self._api_key,)) from exc
        if not response.is_success:
            raise provider_error(self._label, response, secrets=(self._api_key,))
        try:
            return response.json()
        except ValueError as exc:
            message = f"{self._label}: unreadable answer to {method} {path}"
            raise ProviderResponseError(message, model=self._label) from exc


def _created(batch: dict[str, Any]) -> float:
    try:
        return datetime.fromisoformat(str(batch.get("created_at")).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def _size(batch: dict[str, Any]) -> int:
    return sum(int(n or 0) for n in (batch.get("request_counts") or {}).values())


def _remote(batch: dict[str, Any]) -> RemoteBatch:
    status = str(batch.get("processing_status"))
    return RemoteBatch(str(batch["id"]), status, status == "ended", {}, {"results_url": batch.get("results_url")})
