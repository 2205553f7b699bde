"""An HTTP client of Conveyor's batch API (`/v2/batches`), used by `conveyor batch ...`.

It speaks only HTTP, so it works against any Conveyor server, and it turns every expected failure
(server down, bad key, unknown id, refused lines) into a `BatchClientError` whose message says what
to do next. Uploads and result downloads are streamed: neither holds a whole file in memory.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict, Field

DEFAULT_URL = "http://127.0.0.1:8000"
ENDED = frozenset({"completed", "cancelled", "failed"})


class BatchCounts(BaseModel):
    total: int = 0
    queued: int = 0
    running: int = 0
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0

    @property
    def done(self) -> int:
        """Items that have ended, whichever way."""
        return self.succeeded + self.failed + self.cancelled


class BatchUsage(BaseModel):
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0


class BatchCost(BaseModel):
    generation: float = 0.0
    platform: float = 0.0
    total: float = 0.0


class InvalidItem(BaseModel):
    line: int | None = None
    custom_id: str | None = None
    reason: str = ""


class Batch(BaseModel):
    """The batch object as the server sends it; unknown fields are kept, so `--json` shows them all."""

    model_config = ConfigDict(extra="allow")

    id: str
    status: str
    function_id: str | None = None
    revision_id: str | None = None
    counts: BatchCounts = Field(default_factory=BatchCounts)
    usage: BatchUsage = Field(default_factory=BatchUsage)
    cost: BatchCost = Field(default_factory=BatchCost)
    estimated_seconds_remaining: float | None = None
    invalid_items: list[InvalidItem] = Field(default_factory=list)  # the server lists the first 100
    invalid_count: int | None = None
    metadata: dict[str, Any] | None = None
    created_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None

    @property
    def ended(self) -> bool:
        return self.status in ENDED

    @property
    def skipped(self) -> int:
        """Invalid lines left out (`on_invalid: skip`)."""
        return max(self.invalid_count or 0, len(self.invalid_items))


@dataclass(frozen=True)
class Submitted:
    batch: Batch
    replayed: bool  # the server answered with the batch an earlier request with this Idempotency-Key made


@dataclass(frozen=True)
class ResultsWritten:
    lines: int
    by_status: dict[str, int]


class BatchClientError(Exception):
    """An expected failure: `message` says what went wrong, `hint` what to do about it."""

    def __init__(self, message: str, hint: str = "", status_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.status_code = status_code


class InvalidLines(BatchClientError):
    """The server refused the file: `items` names each bad line (the server lists at most 100)."""

    def __init__(self, message: str, items: list[InvalidItem], invalid_count: int) -> None:
        hint = "fix these lines, or pass --on-invalid skip to submit the valid lines only"
        super().__init__(message, hint, 400)
        self.items = items
        self.invalid_count = invalid_count


class BatchClient:
    """`url` is the server's root (a trailing `/v2` is accepted too); `api_key` may be empty."""

    upload_timeout = 900.0  # accepting 100,000 lines takes seconds; a slow link takes longer

    def __init__(self, url: str = DEFAULT_URL, api_key: str = "", timeout: float = 60.0) -> None:
        self.url = url.rstrip("/").removesuffix("/v2")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(base_url=self.url + "/v2", headers=headers, timeout=timeout)

    def __enter__(self) -> BatchClient:
        return self

    def __exit__(self, *_: object) -> None:
        self._http.close()

    def function_id(self, name: str) -> str:
        """The id of the project's function called `name`."""
        response = self._send("GET", f"/functions/by-name/{quote(name, safe='/')}")
        if response.status_code == 404:
            raise BatchClientError(
                f"no function named {name!r} in this project",
                "create it first (POST /v2/functions, or one /v2/call with that name), or check --function",
                404,
            )
        return self._json(response)["id"]

    def submit(
        self,
        path: Path,
        *,
        function_id: str,
        revision_id: str | None = None,
        on_invalid: str | None = None,
        metadata: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Submitted:
        """Upload `path` as multipart (`batch` JSON part + `file` JSONL part), streamed from disk."""
        spec: dict[str, Any] = {"function_id": function_id}
        optional = {"revision_id": revision_id, "on_invalid": on_invalid, "metadata": metadata}
        spec.update({name: value for name, value in optional.items() if value})
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        with path.open("rb") as upload:
            files = {
                "batch": (None, json.dumps(spec), "application/json"),
                "file": (path.name, upload, "application/x-ndjson"),
            }
            response = self._send("POST", "/batches", files=files, headers=headers, timeout=self.upload_timeout)
        if response.status_code == 400:
            self._raise_invalid_lines(response)
        batch = Batch.model_validate(self._json(response))
        return Submitted(batch, replayed=response.headers.get("Idempotent-Replayed", "").lower() == "true")

    def get(self, batch_id: str) -> Batch:
        return Batch.model_validate(self._json(self._send("GET", f"/batches/{quote(batch_id, safe='')}")))

    def raw(self, batch_id: str) -> dict[str, Any]:
        """The batch object exactly as the server sent it."""
        return self._json(self._send("GET", f"/batches/{quote(batch_id, safe='')}"))

    def list_batches(self, status: str | None = None, limit: int = 20) -> list[Batch]:
        params: dict[str, Any] = {"limit": limit, **({"status": status} if status else {})}
        page = self._json(self._send("GET", "/batches", params=params))
        return [Batch.model_validate(item) for item in page.get("data", [])]

    def cancel(self, batch_id: str) -> Batch:
        return Batch.model_validate(self._json(self._send("POST", f"/batches/{quote(batch_id, safe='')}/cancel")))

    def retry(self, batch_id: str) -> Batch:
        return Batch.model_validate(self._json(self._send("POST", f"/batches/{quote(batch_id, safe='')}/retry")))

    def write_results(self, batch_id: str, sink: IO[bytes], statuses: list[str] | None = None) -> ResultsWritten:
        """Stream the results (NDJSON) into `sink` line by line; count the lines by item status."""
        by_status: Counter[str] = Counter()
        params = [("status", status) for status in statuses or []]
        path = f"/batches/{quote(batch_id, safe='')}/results"
        try:
            with self._http.stream("GET", path, params=params) as response:
                if response.status_code >= 400:
                    response.read()
                    self._json(response)  # raises the error the server described
                for line in _ndjson_lines(response.iter_bytes()):
                    sink.write(line + b"\n")
                    by_status[_status_of(line)] += 1
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from exc
        return ResultsWritten(sum(by_status.values()), dict(by_status))

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from exc

    def _unreachable(self, exc: httpx.TransportError) -> BatchClientError:
        if isinstance(exc, httpx.TimeoutException):
            return BatchClientError(f"Conveyor at {self.url} did not answer in time ({type(exc).__name__})")
        return BatchClientError(
            f"cannot reach Conveyor at {self.url} ({type(exc).__name__})",
            "start it with `make run` or set CONVEYOR_URL (or pass --url)",
        )

    def _json(self, response: httpx.Response) -> dict[str, Any]:
        """The body of a success; for an error, the BatchClientError that says what to do."""
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code < 400 and isinstance(body, dict):
            return body
        error = body if isinstance(body, dict) else {}
        message = str(error.get("message") or response.text[:200] or response.reason_phrase)
        if response.status_code == 401:
            raise BatchClientError(f"the server refused the API key: {message}", _KEY_HINT, 401)
        if response.status_code == 404:
            raise BatchClientError(f"not found: {message}", "check the id (`conveyor batch list`)", 404)
        if response.status_code < 400:
            raise BatchClientError(f"unexpected answer from {response.url}: {response.text[:200]}")
        detail = error.get("detail")
        described = f"{message} ({_short(detail)})" if detail and _short(detail) not in message else message
        raise BatchClientError(
            f"{response.status_code} {error.get('type', 'error')}: {described}", "", response.status_code
        )

    def _raise_invalid_lines(self, response: httpx.Response) -> None:
        body = response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
        detail = body.get("detail") if isinstance(body, dict) else None
        if isinstance(detail, dict) and "invalid_items" in detail:
            items = [InvalidItem.model_validate(item) for item in detail["invalid_items"]]
            count = int(detail.get("invalid_count") or len(items))
            raise InvalidLines(str(detail.get("reason") or body.get("message") or "invalid lines"), items, count)
        self._json(response)


_KEY_HINT = "set CONVEYOR_API_KEY or pass --key (`conveyor keys create --project NAME` makes one)"


def _ndjson_lines(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """Non-empty lines split on `\n` only: a JSON string may hold U+2028 or `\r`, which `splitlines`
    (and so httpx's `iter_lines`) would take for line breaks."""
    pending = b""
    for chunk in chunks:
        *lines, pending = (pending + chunk).split(b"\n")
        yield from (line for line in lines if line.strip())
    if pending.strip():
        yield pending


def _status_of(line: bytes) -> str:
    try:
        return str(json.loads(line).get("status", "unknown"))
    except (ValueError, AttributeError):
        return "unknown"


def _short(detail: Any) -> str:
    text = detail if isinstance(detail, str) else json.dumps(detail)
    return text if len(text) <= 300 else text[:297] + "..."
