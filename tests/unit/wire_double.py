"""A stand-in for `ProviderHTTPClient` that answers model calls from a script, with no server.

An adapter reaches the network only through `client.session().post(...)`, with the proxy that
`client.proxy_for(url)` names (app/providers/wire.py), so a test hands it a `ScriptedClient` and scripts
each answer: a status with a body and headers, an event stream cut into chunks (optionally broken off by
an exception), or the exception aiohttp itself would raise (a timeout, a refused connection). In the
spirit of httpx's `MockTransport`, for the aiohttp path.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from multidict import CIMultiDict, CIMultiDictProxy


@dataclass(frozen=True)
class Reply:
    """One scripted answer. `chunks` (when set) is the body as it arrives; `broken_by` is raised after the
    last chunk (a stream cut off) or, without chunks, when the body is read (a truncated body)."""

    status: int = 200
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    chunks: tuple[bytes, ...] | None = None
    broken_by: BaseException | None = None


def json_reply(status: int, payload: Any, headers: Mapping[str, str] | None = None) -> Reply:
    return Reply(status, json.dumps(payload).encode(), {"content-type": "application/json", **(headers or {})})


def sse_reply(*events: str, broken_by: BaseException | None = None) -> Reply:
    """A 200 event stream, one chunk per event (`events` are the lines of each event, already framed)."""
    chunks = tuple(event.encode() for event in events)
    return Reply(200, b"", {"content-type": "text/event-stream"}, chunks=chunks, broken_by=broken_by)


@dataclass(frozen=True)
class SentRequest:
    url: str
    headers: Mapping[str, str]
    body: dict[str, Any]


class ScriptedClient:
    """`session().post(...)` takes the next scripted answer: a `Reply`, or an exception raised as the
    request is sent (where aiohttp raises connection errors and connect timeouts)."""

    wire_timeout = None

    def __init__(self, *answers: Reply | BaseException) -> None:
        self._answers = list(answers)
        self.sent: list[SentRequest] = []

    def session(self) -> ScriptedClient:
        return self

    def proxy_for(self, url: object) -> tuple[None, None]:
        return None, None  # a direct connection

    def post(self, url: object, *, data: bytes, headers: Mapping[str, str], **_: Any) -> _Exchange:
        self.sent.append(SentRequest(str(url), dict(headers), json.loads(data)))
        return _Exchange(self._answers.pop(0))


class _Exchange:
    def __init__(self, answer: Reply | BaseException) -> None:
        self._answer = answer

    async def __aenter__(self) -> _Response:
        if isinstance(self._answer, BaseException):
            raise self._answer
        return _Response(self._answer)

    async def __aexit__(self, *exc: object) -> bool:
        return False


class _Response:
    def __init__(self, reply: Reply) -> None:
        self._reply = reply
        self.status = reply.status
        self.headers = CIMultiDictProxy(CIMultiDict(reply.headers))
        self.content = self

    async def read(self) -> bytes:
        if self._reply.broken_by is not None and self._reply.chunks is None:
            raise self._reply.broken_by
        return self._reply.body if self._reply.chunks is None else b"".join(self._reply.chunks)

    async def iter_any(self) -> AsyncIterator[bytes]:
        for chunk in self._reply.chunks if self._reply.chunks is not None else (self._reply.body,):
            yield chunk
        if self._reply.broken_by is not None:
            raise self._reply.broken_by
