"""Streamed calls: submit the job, follow its stream messages from Redis, and write Opper SSE chunks.

The stream subscribes to the job's channel before the job is enqueued, so no delta can be missed.
Framing (docs/opper-v2-api.md §3): `data: {json object}\\n\\n` events only, the span id first, no
terminator (the connection closes at the end), `: keep-alive` comments while the model is silent.
The job runs and is stored like any call; a client that disconnects does not cancel it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool

from app.config import Settings
from app.engine.structured import resolve_local_ref
from app.errors import ServiceUnavailable
from app.schemas.calls import CallRequest
from app.schemas.functions import FunctionCallRequest
from app.services.json_deltas import JsonDeltaParser
from app.services.stream_hub import StreamHub
from app.services.stream_messages import StreamMessage
from app.services.submission import CallSubmitter
from app.store.db import DATABASE_UNAVAILABLE
from app.store.job_records import DeliveryOptions
from app.store.jobs import JobRecord, JobRepository
from app.store.projects import ProjectRef
from app.store.tables import JobStatus

STREAMED = DeliveryOptions(stream=True)  # written with the job: its worker publishes deltas as they come

Chunk = dict[str, Any]
_SCALAR_TYPES = {"string", "number", "integer", "boolean", "null"}


def sse_event(chunk: Chunk) -> str:
    return f"data: {json.dumps(chunk, separators=(',', ':'))}\n\n"


def error_chunk(error_type: str, message: str) -> Chunk:
    return {"chunk_type": "error", "error_type": error_type, "error_message": message}


class ChunkWriter:
    """Turns one job's stream messages into StreamingChunk objects.

    `call` streams give text deltas, or with an output schema `(json_path, scalar)` deltas; `function`
    streams (whose SDK model only has a string `delta`) give the raw text, JSON text included."""

    def __init__(self, task: dict[str, Any], *, function: bool) -> None:
        schema = task.get("output_schema")
        self.function = function
        self.kind = "json" if schema else "text"
        root = resolve_local_ref(schema, schema) if schema else {}
        self._parser = JsonDeltaParser(skip_prose=root.get("type") not in _SCALAR_TYPES) if schema else None
        self.showing = False  # the client holds output of the current attempt

    def delta(self, text: str) -> list[Chunk]:
        if not text:
            return []
        self.showing = True
        if self._parser is None or self.function:
            return [{"delta": text, "chunk_type": self.kind}]
        return [{"delta": d.value, "json_path": d.path, "chunk_type": "json"} for d in self._parser.feed(text)]

    def reset(self, error_type: str, message: str) -> list[Chunk]:
        """The output so far is void; a new attempt's output follows."""
        if self._parser is not None:
            self._parser.reset()
        self.showing = False
        return [error_chunk(error_type, message)]

    def finish(self, job: JobRecord | None) -> list[Chunk]:
        """The job's final state, once its `end` message came."""
        chunks: list[Chunk] = []
        if self._parser is not None and not self.function:
            chunks += [{"delta": d.value, "json_path": d.path, "chunk_type": "json"} for d in self._parser.close()]
        if job is None or job.status is JobStatus.succeeded:
            return chunks
        if job.status is JobStatus.cancelled:
            return [*chunks, error_chunk("JobCancelled", "the job was cancelled")]
        error = job.error or {}
        return [*chunks, error_chunk(error.get("type") or "TaskFailedError", error.get("message") or "the call failed")]

    def recover(self, job: JobRecord) -> list[Chunk]:
        """A job that ended while its `end` message was lost: replay the stored answer whole."""
        chunks: list[Chunk] = []
        if job.status is JobStatus.succeeded and job.result is not None:
            if self.showing:
                chunks += self.reset("StreamInterrupted", "part of the stream was lost; the whole answer follows")
            message = job.result.get("message")
            chunks += self.delta(message if message is not None else json.dumps(job.result.get("json_payload")))
        return chunks + self.finish(job)


def _unavailable_chunk(job: JobRecord) -> Chunk:
    """The job ended and is stored, but its outcome could not be read: the database went away."""
    return error_chunk(
        "ServiceUnavailableError",
        f"the database became unavailable as the call ended; its job {job.id} is stored: "
        f"poll GET /v2/jobs/{job.id} for its result instead of sending the call again",
    )


@dataclass
class StreamService:
    settings: Settings
    submitter: CallSubmitter
    jobs: JobRepository
    hub: StreamHub

    async def open_call(self, project: ProjectRef, request: CallRequest) -> AsyncIterator[str]:
        """Validate and start a streamed call (errors here are ordinary JSON errors); its SSE events."""
        job = await self.submitter.submit(project, request, delivery=STREAMED)
        return await self._open(job, function=False)

    async def open_function_call(
        self, project: ProjectRef, function_id: str, revision_id: str | None, body: FunctionCallRequest
    ) -> AsyncIterator[str]:
        job = await self.submitter.submit_function_call(project, function_id, revision_id, body, delivery=STREAMED)
        return await self._open(job, function=True)

    async def _open(self, job: JobRecord, *, function: bool) -> AsyncIterator[str]:
        subscription = self.hub.subscription(job.id)
        try:
            queue = await subscription.__aenter__()
        except Exception as exc:
            await run_in_threadpool(self.jobs.discard_queued, job.id)
            raise ServiceUnavailable(
                "the stream could not subscribe to its job's output; nothing was run, retry the request",
                detail=f"stream subscription failed: {type(exc).__name__}",
            ) from exc
        try:
            await self.submitter.enqueue(job)
        except BaseException:
            await subscription.__aexit__(None, None, None)
            raise
        return self._events(job, ChunkWriter(job.task, function=function), queue, subscription)

    async def _events(
        self, job: JobRecord, writer: ChunkWriter, queue: asyncio.Queue, subscription: Any
    ) -> AsyncIterator[str]:
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self.settings.job_hard_time_limit + 2 * self.settings.job_lease_seconds + 60
        try:
            yield sse_event({"span_id": job.span_id})
            while True:
                try:
                    message = await asyncio.wait_for(queue.get(), timeout=self.settings.stream_keepalive_seconds)
                except TimeoutError:
                    message = "idle"
                if isinstance(message, StreamMessage) and message.kind == "delta":
                    chunks = writer.delta(message.text)
                elif isinstance(message, StreamMessage) and message.kind == "reset":
                    chunks = writer.reset(message.error_type or "AttemptFailed", message.error_message or "")
                elif isinstance(message, StreamMessage):  # end: the outcome is stored
                    try:
                        ended = await run_in_threadpool(self.jobs.get, job.id)
                    except DATABASE_UNAVAILABLE:
                        yield sse_event(_unavailable_chunk(job))
                        return
                    for chunk in writer.finish(ended):
                        yield sse_event(chunk)
                    return
                else:  # silence or a lost connection: did the job end without us hearing?
                    try:
                        current = await run_in_threadpool(self.jobs.get, job.id)
                    except DATABASE_UNAVAILABLE:  # the job runs on; its end message still comes
                        current = None
                    if current is not None and current.status.is_final:
                        for chunk in writer.recover(current):
                            yield sse_event(chunk)
                        return
                    if loop.time() > give_up:
                        yield sse_event(
                            error_chunk("StreamTimeout", "the job did not finish in time; it keeps running")
                        )
                        return
                    if message == "idle":
                        yield ": keep-alive\n\n"
                    continue
                for chunk in chunks:
                    yield sse_event(chunk)
        finally:
            await subscription.__aexit__(None, None, None)
