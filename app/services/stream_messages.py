"""`StreamMessage`: the wire format of a streamed call between the worker and the API, over Redis pub/sub.

The worker publishes one per engine stream event (app/engine/streaming.py reports deltas and resets to
a `StreamSink`) and one `end` after the job's final state is stored; the stream hub decodes them and
the API turns them into Opper SSE chunks.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Literal

import redis.asyncio as aioredis

from app.store import keys

log = logging.getLogger("conveyor.worker")


@dataclass(frozen=True)
class StreamMessage:
    """`delta`: more output text. `reset`: discard the output so far, a new attempt follows (with the
    reason). `end`: the job reached its final state, which is stored: read it there."""

    kind: Literal["delta", "reset", "end"]
    text: str = ""
    error_type: str | None = None
    error_message: str | None = None

    def encode(self) -> str:
        if self.kind == "delta":
            return json.dumps({"k": "delta", "t": self.text}, separators=(",", ":"))
        if self.kind == "reset":
            body = {"k": "reset", "type": self.error_type, "message": self.error_message}
            return json.dumps(body, separators=(",", ":"))
        return '{"k":"end"}'

    @classmethod
    def decode(cls, raw: str | bytes) -> StreamMessage:
        data = json.loads(raw)
        kind = data.get("k")
        if kind == "delta":
            return cls("delta", text=str(data.get("t") or ""))
        if kind == "reset":
            return cls("reset", error_type=data.get("type"), error_message=data.get("message"))
        return cls("end")


class StreamChannel:
    """A running job's stream channel (Redis pub/sub), as the engine's `StreamSink` in the worker."""

    def __init__(self, redis: aioredis.Redis, job_id: str) -> None:
        self.redis = redis
        self.job_id = job_id
        self.channel = keys.job_stream_channel(job_id)

    async def delta(self, text: str) -> None:
        await self._publish(StreamMessage("delta", text=text))

    async def reset(self, error_type: str, message: str) -> None:
        await self._publish(StreamMessage("reset", error_type=error_type, error_message=message))

    async def _publish(self, message: StreamMessage) -> None:
        # A lost delta must not fail the call: the API replays the stored answer if it misses the end.
        try:
            await self.redis.publish(self.channel, message.encode())
        except Exception:
            log.warning("could not publish a stream message", extra={"job_id": self.job_id}, exc_info=True)
