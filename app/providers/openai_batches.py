"""OpenAI's Batch API (and compatible endpoints'): JSONL up with `POST /files` (purpose `batch`), a batch
of it with `POST /batches`, polled with `GET /batches/{id}`, answers read from its output and error files.

Each line's body is `OpenAIProvider.build_body` of the line's request: exactly what the synchronous
path sends. Answers come back in any order, keyed by `custom_id`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

import httpx

from app.errors import ProviderResponseError
from app.providers.batch_api import BatchIntent, BatchLine, LineResult, RemoteBatch
from app.providers.http_errors import error_for_status, provider_error

if TYPE_CHECKING:
    from app.providers.openai import OpenAIProvider

ENDPOINT = "/v1/chat/completions"
ENDED = ("completed", "failed", "expired", "cancelled")
LIST_PAGE = 100
MARKER_KEY = "conveyor_provider_batch_id"  # the metadata a batch is found again by


class OpenAIBatchAPI:
    max_requests = 50_000
    max_bytes = 200 * 1024 * 1024

    def __init__(self, provider: OpenAIProvider, client: httpx.AsyncClient, api_key: str) -> None:
        self.provider = provider
        self.base_url = provider.base_url
        self._client = client
        self._api_key = api_key
        self._label = f"{provider.name} batch API"

    def line(self, line: BatchLine) -> bytes:
        body = self.provider.build_body(line.request)
        entry = {"custom_id": line.custom_id, "method": "POST", "url": ENDPOINT, "body": body}
        return json.dumps(entry, separators=(",", ":")).encode() + b"\n"

    def line_size(self, line: BatchLine) -> int:
        return len(self.line(line))

    async def submit(self, lines: Sequence[BatchLine], intent: BatchIntent) -> RemoteBatch:
        content = b"".join(self.line(line) for line in lines)
        files = {"file": ("batch.jsonl", content, "application/jsonl")}
        uploaded = await self._call("POST", "/files", data={"purpose": "batch"}, files=files)
        body = {
            "input_file_id": uploaded["id"],
            "endpoint": ENDPOINT,
            "completion_window": "24h",
            "metadata": {MARKER_KEY: intent.marker},
        }
        return _remote(await self._call("POST", "/batches", json=body))

    async def find(self, intent: BatchIntent) -> RemoteBatch | None:
        """The batch created with the intent's marker in its metadata: the list, newest first, down to
        the intent's time."""
        after: str | None = None
        while True:
            params: dict[str, Any] = {"limit": LIST_PAGE, **({"after": after} if after else {})}
            page = await self._call("GET", "/batches", params=params)
            for batch in page.get("data") or ():
                if (batch.get("metadata") or {}).get(MARKER_KEY) == intent.marker:
                    return _remote(batch)
                if float(batch.get("created_at") or 0) < intent.created_after:
                    return None  # older than the intent: it was never created
            if not page.get("has_more") or not page.get("data"):
                return None
            after = page["data"][-1]["id"]

    async def get(self, batch_id: str) -> RemoteBatch:
        return _remote(await self._call("GET", f"/batches/{batch_id}"))

    async def cancel(self, batch_id: str) -> RemoteBatch:
        return _remote(await self._call("POST", f"/batches/{batch_id}/cancel"))

    async def results(self, batch: RemoteBatch) -> AsyncIterator[list[LineResult]]:
        """The lines answered, a file at a time: the output file, then the error file. A line in
        neither was never run (expired, or its batch cancelled)."""
        for key in ("output_file_id", "error_file_id"):
            file_id = batch.handles.get(key)
            if file_id:
                content = await self._raw("GET", f"/files/{file_id}/content")
                yield [self._result(json.loads(raw)) for raw in content.splitlines() if raw.strip()]

    def _result(self, entry: dict[str, Any]) -> LineResult:
        custom_id = str(entry.get("custom_id"))
        response = entry.get("response")
        if not isinstance(response, dict):  # never run: expired, or its batch was cancelled
            return LineResult(custom_id)
        status = int(response.get("status_code") or 0)
        body = response.get("body")
        model = f"{self.provider.name}/{(body or {}).get('model', '?') if isinstance(body, dict) else '?'}"
        if status != 200 or not isinstance(body, dict):
            return LineResult(
                custom_id, error=error_for_status(model, status, json.dumps(body), secrets=(self._api_key,))
            )
        try:
            return LineResult(custom_id, completion=self.provider.parse_completion(body, str(body.get("model"))))
        except ProviderResponseError as error:
            return LineResult(custom_id, error=error)

    async def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        content = await self._raw(method, path, **kwargs)
        try:
            return json.loads(content)
        except ValueError as exc:
            raise ProviderResponseError(
                f"{self._label}: unreadable answer to {method} {path}", model=self._label
            ) from exc

    async def _raw(self, method: str, path: str, **kwargs: Any) -> bytes:
        try:
            response = await self._client.request(
                method, f"{self.base_url}{path}", headers=self.provider.auth_headers, **kwargs
            )
        except httpx.HTTPError as exc:
            raise provider_error(self._label, exc, secrets=(self._api_key,)) from exc
        if not response.is_success:
            raise provider_error(self._label, response, secrets=(self._api_key,))
        return response.content


def _remote(batch: dict[str, Any]) -> RemoteBatch:
    status = str(batch.get("status"))
    handles = {key: batch.get(key) for key in ("output_file_id", "error_file_id")}
    return RemoteBatch(str(batch["id"]), status, status in ENDED, dict(batch.get("metadata") or {}), handles)
