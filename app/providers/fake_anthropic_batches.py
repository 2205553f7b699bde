"""The fake provider's Anthropic Message Batches API.

    POST /v1/messages/batches                 {requests: [{custom_id, params}]}
    GET  /v1/messages/batches                 list, newest first (`limit`, `after_id`)
    GET  /v1/messages/batches/{id}            the batch (processing_status in_progress / canceling / ended)
    POST /v1/messages/batches/{id}/cancel     canceling, then ended with its requests canceled
    GET  /v1/messages/batches/{id}/results    JSONL at `results_url` once ended

Each request is answered as `POST /v1/messages` would answer its params (see app/providers/fake_batches.py
for the timing and the `batch_ms` / `batch_expire` directives); results come in reverse order.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.providers.fake_batches import FakeBatchStore, answer_line
from app.providers.fake_formats import AnthropicFormat
from app.providers.fake_script import FakeScript
from app.providers.fake_state import FakeState

CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_COUNTS = ("processing", "succeeded", "errored", "canceled", "expired")


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse(AnthropicFormat.error_body(status, message), status_code=status)


def _script(request: dict[str, Any]) -> FakeScript | None:
    try:
        return FakeScript.parse(str(request["params"]["model"]))
    except (KeyError, TypeError, ValueError):
        return None


class FakeMessageBatchAPI:
    def __init__(self, state: FakeState, store: FakeBatchStore) -> None:
        self.state = state
        self.store = store
        self.tasks: set[asyncio.Task] = set()
        self.requests: dict[str, list[str]] = {}  # each batch's custom ids, for a cancel's results

    def routes(self) -> list[Route]:
        return [
            Route("/v1/messages/batches", self.create, methods=["POST"]),
            Route("/v1/messages/batches", self.listing),
            Route("/v1/messages/batches/{batch_id}", self.get),
            Route("/v1/messages/batches/{batch_id}/cancel", self.cancel, methods=["POST"]),
            Route("/v1/messages/batches/{batch_id}/results", self.results),
        ]

    async def create(self, request: Request) -> Response:
        body = await request.json()  # read first: a held request goes on after its client died
        await self.store.held("create")
        requests = body.get("requests")
        if not isinstance(requests, list) or not requests:
            return _error(400, "requests: must be a non-empty list")
        seen: set[str] = set()
        for entry in requests:
            custom_id = entry.get("custom_id") if isinstance(entry, dict) else None
            if not isinstance(custom_id, str) or not CUSTOM_ID.match(custom_id) or custom_id in seen:
                return _error(400, f"custom_id: {custom_id!r} must match {CUSTOM_ID.pattern} and be unique")
            if not isinstance(entry.get("params"), dict):
                return _error(400, f"params: missing for {custom_id}")
            seen.add(custom_id)
        batch_id = f"msgbatch_{uuid.uuid4().hex[:24]}"
        batch = {
            "id": batch_id,
            "type": "message_batch",
            "processing_status": "in_progress",
            "request_counts": {"processing": len(requests), "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0},
            "ended_at": None,
            "created_at": _now(),
            "expires_at": None,
            "cancel_initiated_at": None,
            "archived_at": None,
            "results_url": None,
        }
        self.store.message_batches[batch_id] = batch
        self.requests[batch_id] = [entry["custom_id"] for entry in requests]
        delays = [s.batch_ms / 1000 for s in map(_script, requests) if s is not None and s.batch_ms is not None]
        base = str(request.base_url).rstrip("/")
        task = asyncio.create_task(self._finish(batch, requests, max([self.store.batch_seconds, *delays]), base))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return JSONResponse(batch)

    async def _finish(self, batch: dict[str, Any], requests: list[dict[str, Any]], after: float, base: str) -> None:
        await asyncio.sleep(after)
        if batch["processing_status"] != "in_progress":
            return
        self._end(batch, [self._result(entry) for entry in requests], base)

    def _result(self, entry: dict[str, Any]) -> dict[str, Any]:
        script = _script(entry)
        if script is not None and script.batch_expire:
            return {"custom_id": entry["custom_id"], "result": {"type": "expired"}}
        status, body, _ = answer_line(entry["params"], self.state, AnthropicFormat())
        self.store.lines_answered += 1
        if status == 200:
            return {"custom_id": entry["custom_id"], "result": {"type": "succeeded", "message": body}}
        return {"custom_id": entry["custom_id"], "result": {"type": "errored", "error": body}}

    def _end(self, batch: dict[str, Any], results: list[dict[str, Any]], base: str) -> None:
        results.reverse()  # no order is promised
        counts = dict.fromkeys(_COUNTS, 0)
        for result in results:
            counts[result["result"]["type"]] += 1
        batch["request_counts"] = counts
        self.store.message_results[batch["id"]] = "".join(json.dumps(r) + "\n" for r in results).encode()
        batch["processing_status"], batch["ended_at"] = "ended", _now()
        batch["results_url"] = f"{base}/v1/messages/batches/{batch['id']}/results"

    async def listing(self, request: Request) -> Response:
        limit = min(int(request.query_params.get("limit", "20")), 100)
        after = request.query_params.get("after_id")
        newest_first = list(reversed(self.store.message_batches.values()))
        if after is not None:
            ids = [batch["id"] for batch in newest_first]
            newest_first = newest_first[ids.index(after) + 1 :] if after in ids else []
        page = newest_first[:limit]
        return JSONResponse(
            {
                "data": page,
                "has_more": len(newest_first) > limit,
                "first_id": page[0]["id"] if page else None,
                "last_id": page[-1]["id"] if page else None,
            }
        )

    async def get(self, request: Request) -> Response:
        batch = self.store.message_batches.get(request.path_params["batch_id"])
        return JSONResponse(batch) if batch is not None else _error(404, "no such message batch")

    async def cancel(self, request: Request) -> Response:
        batch = self.store.message_batches.get(request.path_params["batch_id"])
        if batch is None:
            return _error(404, "no such message batch")
        if batch["processing_status"] == "in_progress":
            batch["cancel_initiated_at"] = _now()
            ids = self.requests.get(batch["id"], [])
            results = [{"custom_id": custom_id, "result": {"type": "canceled"}} for custom_id in ids]
            self._end(batch, results, str(request.base_url).rstrip("/"))
        return JSONResponse(batch)

    async def results(self, request: Request) -> Response:
        await self.store.held("content")
        content = self.store.message_results.get(request.path_params["batch_id"])
        if content is None:
            return _error(404, "results are not available until the batch has ended")
        return Response(content, media_type="application/binary")
