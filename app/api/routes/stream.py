"""Streamed calls as server-sent events: `/v2/call/stream` and `/v2/functions/{id}/call/stream[/{revision}]`.

Validation errors are ordinary JSON errors (before any event); once streaming, a failure is an
`error` chunk and the connection closes. `/functions/{id}/call/{revision_id}` (functions.py) refuses
the segment `stream`, so these routes match whichever router is mounted first.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from app.api.deps import CurrentProject, Streams
from app.schemas.calls import CallRequest, ErrorBody
from app.schemas.functions import FunctionCallRequest
from app.schemas.streaming import SSE_RESPONSES

router = APIRouter(tags=["calls"])

_RESPONSES = {**SSE_RESPONSES, **{code: {"model": ErrorBody} for code in (400, 401, 404, 422, 503)}}


class EventStreamResponse(StreamingResponse):
    media_type = "text/event-stream"  # also what the OpenAPI docs show for the 200


def sse_response(events: AsyncIterator[str]) -> EventStreamResponse:
    # no-transform / X-Accel-Buffering: proxies must pass each event on as it comes.
    return EventStreamResponse(events, headers={"cache-control": "no-cache, no-transform", "x-accel-buffering": "no"})


@router.post(
    "/call/stream", response_class=EventStreamResponse, responses=_RESPONSES, summary="Complete a task, streamed"
)
async def call_stream(body: CallRequest, project: CurrentProject, streams: Streams) -> EventStreamResponse:
    """Same body as `/v2/call`. Events: `{span_id}` first, then `{delta, chunk_type: "text"}`, or with an
    output schema `{delta, json_path, chunk_type: "json"}` (scalar values at paths such as `people[0].name`).
    An `error` chunk followed by more deltas means a new attempt restarted the output; an `error` chunk
    at the end means the call failed. The result is stored like any call's (span, usage, cost)."""
    return sse_response(await streams.open_call(project, body))


@router.post(
    "/functions/{function_id}/call/stream",
    response_class=EventStreamResponse,
    responses=_RESPONSES,
    summary="Call a function, streamed",
)
async def function_stream(
    function_id: str, body: FunctionCallRequest, project: CurrentProject, streams: Streams
) -> EventStreamResponse:
    """Like `/v2/call/stream` on the function's latest revision. Every `delta` is a string (the SDK's
    function-stream model wants one): with an output schema, pieces of the answer's JSON text."""
    return sse_response(await streams.open_function_call(project, function_id, None, body))


@router.post(
    "/functions/{function_id}/call/stream/{revision_id}",
    response_class=EventStreamResponse,
    responses=_RESPONSES,
    summary="Call a function at a revision, streamed",
)
async def function_revision_stream(
    function_id: str, revision_id: str, body: FunctionCallRequest, project: CurrentProject, streams: Streams
) -> EventStreamResponse:
    """Like the function stream, with the definition pinned to `revision_id`."""
    return sse_response(await streams.open_function_call(project, function_id, revision_id, body))
