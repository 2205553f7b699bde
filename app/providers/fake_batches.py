"""The fake provider's OpenAI Files + Batch API: upload a JSONL file, create a batch of it, poll,
cancel, read the output and error files.

    POST /v1/files                  multipart: purpose=batch, file=<JSONL>
    GET  /v1/files/{id}/content     the file's bytes
    POST /v1/batches                {input_file_id, endpoint, completion_window, metadata}
    GET  /v1/batches                list, newest first (`limit`, `after`)
    GET  /v1/batches/{id}           the batch object
    POST /v1/batches/{id}/cancel    cancelling, then cancelled (no output)

A batch finishes `batch_seconds` after it was created, or later when one of its lines' model names
says so (`?batch_ms=3000`). Each line is answered as `POST /v1/chat/completions` would answer it
(the same scripts: `fail=`, `schema_violation=`...), without the latency; a line whose model says
`batch_expire=1` is not answered (the batch ends `expired`, the line goes to the error file as
`batch_expired`). Successful lines go to the output file, in reverse input order (the API promises
no order); failed lines to the error file. `POST /batch-control/hold` holds an endpoint's requests
(`upload`, `create`, `content`, `error_content`) until `POST /batch-control/release`: tests kill a
worker while it waits.
"""

from __future__ import annotations

import asyncio
import email.parser
import email.policy
import json
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.providers.fake_formats import FakeReply, OpenAIFormat, WireFormat
from app.providers.fake_script import FakeScript, ScriptError, plan_answer
from app.providers.fake_state import FakeState

TERMINAL = ("completed", "failed", "expired", "cancelled")


@dataclass
class FakeBatchStore:
    """Files and batches in memory, with the holds tests set."""

    batch_seconds: float = 0.5
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # id -> (purpose, content)
    batches: dict[str, dict[str, Any]] = field(default_factory=dict)  # insertion order = creation order
    holds: dict[str, asyncio.Event] = field(default_factory=dict)
    waiting: Counter[str] = field(default_factory=Counter)  # requests held right now, by hold name
    error_files: set[str] = field(default_factory=set)
    message_batches: dict[str, dict[str, Any]] = field(default_factory=dict)  # Anthropic's
    message_results: dict[str, bytes] = field(default_factory=dict)
    lines_answered: int = 0

    def add_file(self, purpose: str, content: bytes) -> dict[str, Any]:
        file_id = f"file-{uuid.uuid4().hex[:24]}"
        self.files[file_id] = (purpose, content)
        return {"id": file_id, "object": "file", "bytes": len(content), "created_at": int(time.time()),
                "filename": f"{file_id}.jsonl", "purpose": purpose}  # fmt: skip

    async def held(self, name: str) -> None:
        event = self.holds.get(name)
        if event is not None:
            self.waiting[name] += 1
            try:
                await event.wait()
            finally:
                self.waiting[name] -= 1

    def snapshot(self) -> dict[str, Any]:
        return {
            "batches_created": len(self.batches),
            "message_batches_created": len(self.message_batches),
            "batches_by_status": dict(Counter(batch["status"] for batch in self.batches.values())),
            "lines_answered": self.lines_answered,
            "held": dict(self.waiting),
        }


def answer_line(
    body: dict[str, Any], state: FakeState, fmt: WireFormat | None = None
) -> tuple[int, dict[str, Any], str]:
    """(status, body, request id) for one request, as the synchronous endpoint (of `fmt`, by default
    chat completions) answers it."""
    fmt = fmt or OpenAIFormat()
    request_id = fmt.new_id()
    try:
        prompt = fmt.parse(body)
        script = FakeScript.parse(prompt.model)
    except (ValueError, KeyError, TypeError, AttributeError, ScriptError) as exc:
        return 400, fmt.error_body(400, f"malformed request body: {exc}"), request_id
    state.record(request_id, fmt.path, {}, body)
    status = script.failure_status(state.attempt(prompt.model))
    if status is not None:
        return status, fmt.error_body(status, f"simulated failure ({status}) for {script.model}"), request_id
    if script.garbled:
        return 502, fmt.error_body(502, "simulated garbled answer"), request_id
    reply = FakeReply(request_id, script.model, prompt, plan_answer(prompt, script))
    return 200, fmt.body(reply), request_id


def _script_of(line: dict[str, Any]) -> FakeScript | None:
    try:
        return FakeScript.parse(str(line["body"]["model"]))
    except (KeyError, TypeError, ValueError):
        return None


def _lines(content: bytes) -> list[dict[str, Any]]:
    return [json.loads(raw) for raw in content.splitlines() if raw.strip()]


def _entry(line: dict[str, Any], response: dict[str, Any] | None, error: dict[str, Any] | None) -> dict[str, Any]:
    """One line of an output or error file."""
    request_id = f"batch_req_{uuid.uuid4().hex[:16]}"
    return {"id": request_id, "custom_id": line.get("custom_id"), "response": response, "error": error}


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse(OpenAIFormat.error_body(status, message), status_code=status)


class FakeBatchAPI:
    def __init__(self, state: FakeState, store: FakeBatchStore) -> None:
        self.state = state
        self.store = store
        self.tasks: set[asyncio.Task] = set()

    def routes(self) -> list[Route]:
        return [
            Route("/v1/files", self.upload, methods=["POST"]),
            Route("/v1/files/{file_id}/content", self.content),
            Route("/v1/batches", self.create, methods=["POST"]),
            Route("/v1/batches", self.listing),
            Route("/v1/batches/{batch_id}", self.get),
            Route("/v1/batches/{batch_id}/cancel", self.cancel, methods=["POST"]),
            Route("/batch-control/hold", self.hold, methods=["POST"]),
            Route("/batch-control/release", self.release, methods=["POST"]),
        ]

    async def upload(self, request: Request) -> Response:
        await self.store.held("upload")
        head = f"Content-Type: {request.headers.get('content-type', '')}\r\n\r\n".encode()
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + await request.body())
        if not message.is_multipart():
            return _error(400, "expected multipart/form-data with purpose and file")
        parts = {part.get_param("name", header="content-disposition"): part for part in message.iter_parts()}
        if "file" not in parts or "purpose" not in parts:
            return _error(400, "purpose and file are required")
        purpose = parts["purpose"].get_content().strip()
        content = parts["file"].get_payload(decode=True) or b""
        return JSONResponse(self.store.add_file(purpose, content))

    async def content(self, request: Request) -> Response:
        file_id = request.path_params["file_id"]
        await self.store.held("error_content" if file_id in self.store.error_files else "content")
        found = self.store.files.get(file_id)
        if found is None:
            return _error(404, "no such file")
        return Response(found[1], media_type="application/jsonl")

    async def create(self, request: Request) -> Response:
        body = await request.json()  # read first: a held request goes on after its client died
        await self.store.held("create")
        found = self.store.files.get(str(body.get("input_file_id")))
        if found is None or found[0] != "batch":
            return _error(400, "input_file_id: no such file with purpose batch")
        if body.get("endpoint") != "/v1/chat/completions" or body.get("completion_window") != "24h":
            return _error(400, "endpoint must be /v1/chat/completions and completion_window 24h")
        lines = _lines(found[1])
        now = int(time.time())
        batch = {
            "id": f"batch_{uuid.uuid4().hex[:24]}", "object": "batch", "endpoint": body["endpoint"], "errors": None,
            "input_file_id": body["input_file_id"], "completion_window": "24h", "status": "in_progress",
            "output_file_id": None, "error_file_id": None, "created_at": now, "in_progress_at": now,
            "completed_at": None, "cancelled_at": None, "expired_at": None, "metadata": body.get("metadata"),
            "request_counts": {"total": len(lines), "completed": 0, "failed": 0},
        }  # fmt: skip
        self.store.batches[batch["id"]] = batch
        delays = [s.batch_ms / 1000 for s in map(_script_of, lines) if s is not None and s.batch_ms is not None]
        task = asyncio.create_task(self._finish(batch, lines, max([self.store.batch_seconds, *delays])))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return JSONResponse(batch)

    async def _finish(self, batch: dict[str, Any], lines: list[dict[str, Any]], after: float) -> None:
        await asyncio.sleep(after)
        if batch["status"] != "in_progress":
            return
        output, errors, expired = [], [], False
        for line in lines:
            script = _script_of(line)
            if script is not None and script.batch_expire:
                expired = True
                error = {"code": "batch_expired", "message": "This request could not be executed before expiry."}
                errors.append(_entry(line, None, error))
                continue
            status, body, request_id = answer_line(line.get("body") or {}, self.state)
            self.store.lines_answered += 1
            entry = _entry(line, {"status_code": status, "request_id": request_id, "body": body}, None)
            (output if status == 200 else errors).append(entry)
        output.reverse()  # the API promises no order: make sure callers do not rely on one
        counts = batch["request_counts"]
        counts["completed"], counts["failed"] = len(output), len(errors)
        for key, entries in (("output_file_id", output), ("error_file_id", errors)):
            if entries:
                content = "".join(json.dumps(entry) + "\n" for entry in entries).encode()
                batch[key] = self.store.add_file("batch_output", content)["id"]
        if batch["error_file_id"]:
            self.store.error_files.add(batch["error_file_id"])
        now = int(time.time())
        batch["status"] = "expired" if expired else "completed"
        batch["expired_at" if expired else "completed_at"] = now

    async def listing(self, request: Request) -> Response:
        limit = min(int(request.query_params.get("limit", "20")), 100)
        after = request.query_params.get("after")
        newest_first = list(reversed(self.store.batches.values()))
        if after is not None:
            ids = [batch["id"] for batch in newest_first]
            newest_first = newest_first[ids.index(after) + 1 :] if after in ids else []
        page = newest_first[:limit]
        return JSONResponse({
            "object": "list", "data": page, "has_more": len(newest_first) > limit,
            "first_id": page[0]["id"] if page else None, "last_id": page[-1]["id"] if page else None,
        })  # fmt: skip

    async def get(self, request: Request) -> Response:
        batch = self.store.batches.get(request.path_params["batch_id"])
        return JSONResponse(batch) if batch is not None else _error(404, "no such batch")

    async def cancel(self, request: Request) -> Response:
        batch = self.store.batches.get(request.path_params["batch_id"])
        if batch is None:
            return _error(404, "no such batch")
        if batch["status"] == "in_progress":
            batch["status"], batch["cancelled_at"] = "cancelled", int(time.time())
        return JSONResponse(batch)

    async def hold(self, request: Request) -> Response:
        name = (await request.json())["name"]
        self.store.holds.setdefault(name, asyncio.Event())
        return JSONResponse(self.store.snapshot())

    async def release(self, request: Request) -> Response:
        name = (await request.json())["name"]
        event = self.store.holds.pop(name, None)
        if event is not None:
            event.set()
        return JSONResponse(self.store.snapshot())
