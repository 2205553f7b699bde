"""The `data:` object of each server-sent event of a streamed call (Opper v2 `StreamingChunk`)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

Delta = str | int | float | bool | None


class StreamChunk(BaseModel):
    """One SSE event's data. The first carries only `span_id`; then `delta`s (`chunk_type` text, or json
    with `json_path`); an `error` chunk reports a failure: if more deltas follow, they are a new attempt
    and the output so far is to be discarded; if the stream ends, the call failed. No terminator: the
    stream ends when the connection closes."""

    span_id: str | None = None
    delta: Delta = Field(None, description="Text, or with an output schema the scalar value at `json_path`")
    json_path: str | None = Field(
        None, description="With an output schema: the field being filled, e.g. people[0].name"
    )
    chunk_type: Literal["text", "json", "error"] | None = None
    error_type: str | None = None
    error_message: str | None = None


SSE_RESPONSES = {
    200: {
        "model": StreamChunk,
        "description": "`text/event-stream`: `data: <StreamChunk JSON>` events, closed at the end",
    }
}
